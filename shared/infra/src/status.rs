//! Gorse's health as published by the feedback service in the KV bucket `status` (key
//! `gorse`), followed with a KV watch so `/health/gorse` answers from memory.

use std::sync::{Arc, RwLock};

use async_nats::jetstream::{self, kv};
use futures::StreamExt as _;
use prost::Message as _;
use sidechain_events::rpc::GorseStatus;
use sidechain_events::subjects::{GORSE_STATUS_KEY, STATUS_BUCKET};
use tokio_util::sync::CancellationToken;

/// The status bucket's configuration (created by provisioning).
pub fn bucket_config(replicas: usize) -> kv::Config {
    kv::Config {
        bucket: STATUS_BUCKET.to_owned(),
        description: "Service status shared between Sidechain services".to_owned(),
        history: 1,
        storage: jetstream::stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    }
}

/// The latest Gorse status seen (none until the feedback service published one).
#[derive(Debug, Clone, Default)]
pub struct GorseStatusView {
    latest: Arc<RwLock<Option<GorseStatus>>>,
}

impl GorseStatusView {
    /// The latest status, if any.
    pub fn latest(&self) -> Option<GorseStatus> {
        self.latest.read().ok().and_then(|s| *s)
    }

    fn set(&self, status: Option<GorseStatus>) {
        if let Ok(mut latest) = self.latest.write() {
            *latest = status;
        }
    }

    /// Follows the key until shutdown, opening the bucket and re-watching after NATS outages.
    pub async fn follow(self, js: jetstream::Context, shutdown: CancellationToken) {
        let js = &js;
        let open = move || async move {
            let bucket = crate::nats::open_kv_bucket(js, STATUS_BUCKET)
                .await
                .map_err(|e| e.to_string())?;
            let watch = bucket
                .watch_with_history(GORSE_STATUS_KEY)
                .await
                .map_err(|e| e.to_string())?;
            // A failed watch ends the stream, and `follow` watches again.
            Ok::<_, String>(watch.scan((), |(), entry| {
                std::future::ready(
                    entry
                        .inspect_err(
                            |err| tracing::warn!(error = %err, "Gorse status watch failed"),
                        )
                        .ok(),
                )
            }))
        };
        let this = &self;
        crate::nats::follow("Gorse status", &shutdown, open, move |entry: kv::Entry| {
            match entry.operation {
                kv::Operation::Put => match GorseStatus::decode(entry.value) {
                    Ok(status) => this.set(Some(status)),
                    Err(err) => tracing::warn!(error = %err, "undecodable Gorse status"),
                },
                kv::Operation::Delete | kv::Operation::Purge => this.set(None),
            }
            std::future::ready(())
        })
        .await;
    }
}

/// Writes Gorse's status to the `status` bucket (the feedback service's side).
#[derive(Debug, Clone)]
pub struct GorseStatusPublisher {
    js: jetstream::Context,
    bucket: Arc<tokio::sync::OnceCell<kv::Store>>,
}

impl GorseStatusPublisher {
    /// A publisher into the bucket of `js` (created by provisioning).
    pub fn new(js: jetstream::Context) -> Self {
        Self {
            js,
            bucket: Arc::default(),
        }
    }

    /// Stores `status` as the latest (a put on `$KV.status.gorse`).
    pub async fn publish(&self, status: GorseStatus) -> Result<(), async_nats::Error> {
        let bucket = self
            .bucket
            .get_or_try_init(|| crate::nats::open_kv_bucket(&self.js, STATUS_BUCKET))
            .await?;
        bucket
            .put(GORSE_STATUS_KEY, status.encode_to_vec().into())
            .await?;
        Ok(())
    }
}
