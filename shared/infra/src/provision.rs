//! Provisioning, the admin's step: creates (or updates) the `EVENTS` stream, the KV buckets
//! `users`, `status` and `idempotency`, and the object-store bucket `audio`. The services may only look these up, so this runs before
//! them (or beside them: they report not ready until it has run) — in the tests' servers,
//! `just up`, a compose one-shot service and a Kubernetes Job, as `sidechain-nats-admin
//! provision` with the admin's seed in `NATS_NKEY_FILE`.

use async_nats::jetstream::{self, kv};
use sidechain_events::subjects;

use crate::nats::{StreamConfig, ensure_events_stream, ensure_kv_bucket};

/// The idempotency bucket: a binding lives as long as the stream remembers a `Nats-Msg-Id`.
pub fn idempotency_bucket_config(stream: &StreamConfig) -> kv::Config {
    kv::Config {
        bucket: subjects::IDEMPOTENCY_BUCKET.to_owned(),
        description: "Idempotency-Key → fingerprint of its first request (owned by the edge)"
            .to_owned(),
        history: 1,
        max_age: stream.events_duplicate_window,
        storage: jetstream::stream::StorageType::File,
        num_replicas: stream.events_replicas,
        ..Default::default()
    }
}

/// Creates or updates the stream and creates the buckets that are missing. Idempotent: safe to
/// run on every deployment.
pub async fn provision(
    js: &jetstream::Context,
    stream: &StreamConfig,
) -> Result<(), async_nats::Error> {
    ensure_events_stream(js, stream).await?;
    let replicas = stream.events_replicas;
    for bucket in [
        crate::users::bucket_config(replicas),
        crate::status::bucket_config(replicas),
        idempotency_bucket_config(stream),
    ] {
        let name = bucket.bucket.clone();
        ensure_kv_bucket(js, bucket)
            .await
            .map_err(|err| format!("KV bucket {name}: {err}"))?;
    }
    crate::media_store::ensure_object_bucket(
        js,
        subjects::AUDIO_BUCKET,
        "Uploaded audio and computed waveforms, immutable, keyed by post id (edge writes, media reads)",
        replicas,
    )
    .await
    .map_err(|err| format!("object bucket {}: {err}", subjects::AUDIO_BUCKET))?;
    Ok(())
}
