//! The Sidechain media service: turns uploaded audio into measured posts.
//!
//! A durable JetStream consumer (`media`, shared by every instance, filtered to
//! `events.audio_uploaded`) takes each upload, copies the object from the media store to a local
//! temporary file, decodes and measures it on a blocking thread ([`analyze`]), stores the peaks
//! waveform next to the audio (`<post id>.waveform.json`, and drawn as `<post id>.waveform.svg`)
//! and publishes `audio_processed`; a
//! file that cannot be used becomes `audio_rejected` with the reason. Messages are acknowledged
//! only after that event is stored, so a crash mid-file redelivers it (to this or another
//! instance); the events' ids derive from the upload's, so a redelivery stores them once.
//! Failures that may pass (store or stream unavailable) are retried; after
//! `MEDIA_MAX_ATTEMPTS` deliveries the upload is rejected as poison with the last reason.

pub mod analyze;
pub mod config;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::StreamExt as _;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use sidechain_events::events::event::Payload;
use sidechain_events::events::{AudioProcessed, AudioRejected, AudioUploaded};
use sidechain_events::subjects::{AUDIO_BUCKET, MEDIA_CONSUMER};
use sidechain_events::{DecodedEvent, EventId, EventKind, NewEvent};
use sidechain_infra::media_store::{MediaStore, NatsMediaStore, StoreError};
use sidechain_infra::nats;
use sidechain_infra::service::{AdminServer, Foundation, Running, Stopping, until_cancelled};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;

use crate::analyze::Unusable;

/// Name in logs, traces and the NATS connection.
pub const SERVICE: &str = "sidechain-media";

/// Namespace of the ids of events derived from an upload's event (UUID v5).
const DERIVED_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6d3d_1a70_8c1b_4f0e_a2f4_7b9e_0c5d_3e21);

/// Runs until `shutdown` is cancelled and the files in hand are settled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    start(config, shutdown).await?.wait().await
}

/// The durable consumer's configuration.
pub fn consumer_config(config: &config::JobConfig) -> pull::Config {
    pull::Config {
        durable_name: Some(MEDIA_CONSUMER.to_owned()),
        description: Some("Sidechain media service: uploads to measured audio".to_owned()),
        filter_subject: EventKind::AudioUploaded.subject(),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: config.media_ack_wait,
        // Poison is handled here (rejected after MEDIA_MAX_ATTEMPTS), never dropped silently.
        max_deliver: -1,
        max_ack_pending: (config.media_concurrency * 2) as i64,
        deliver_policy: jetstream::consumer::DeliverPolicy::All,
        ..Default::default()
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FormatLabels {
    format: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// The service's metrics.
#[derive(Debug, Clone)]
struct Metrics {
    in_flight: Gauge,
    pending: Gauge,
    duration: Family<FormatLabels, Histogram>,
    failures: Family<ReasonLabels, Counter>,
    jobs: Family<OutcomeLabels, Counter>,
}

impl Metrics {
    fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            in_flight: Gauge::default(),
            pending: Gauge::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.01, 2.0, 14))
            }),
            failures: Family::default(),
            jobs: Family::default(),
        };
        registry.register(
            "media_jobs_in_flight",
            "Uploads being processed now",
            metrics.in_flight.clone(),
        );
        registry.register(
            "media_consumer_pending",
            "Uploads in the stream not yet delivered to the media consumer (its lag)",
            metrics.pending.clone(),
        );
        registry.register_with_unit(
            "media_processing_duration",
            "Time to fetch, decode, measure and record one upload, by format",
            Unit::Seconds,
            metrics.duration.clone(),
        );
        registry.register(
            "media_failures",
            "Failed processing attempts by reason (undecodable|corrupt|truncated|empty|object_missing|store_unavailable|event_store_unavailable|gave_up|bad_event)",
            metrics.failures.clone(),
        );
        registry.register(
            "media_jobs",
            "Finished deliveries by outcome (processed|rejected|retried)",
            metrics.jobs.clone(),
        );
        metrics
    }

    fn fail(&self, reason: &'static str) {
        self.failures.get_or_create(&ReasonLabels { reason }).inc();
    }

    fn finish(&self, outcome: &'static str) {
        self.jobs.get_or_create(&OutcomeLabels { outcome }).inc();
    }
}

/// Connects and starts consuming; returns where the admin server listens.
pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<Running> {
    let foundation = Foundation::connect(SERVICE, &config.service, &shutdown).await?;
    let stream_ready = foundation.stream_ready();
    let Foundation {
        nats: nats_client,
        jetstream: js,
        mut registry,
        readiness,
        ..
    } = foundation;
    let metrics = Metrics::register(&mut registry);
    let store: Arc<dyn MediaStore> = Arc::new(NatsMediaStore::new(js.clone(), AUDIO_BUCKET));
    let consuming = Arc::new(AtomicBool::new(false));
    let readiness = readiness
        .with_flag("consumer", consuming.clone(), "not consuming yet")
        .with_check("media_store", {
            let store = store.clone();
            move || {
                let store = store.clone();
                async move { store.check().await.map_err(|err| err.to_string()) }
            }
        });
    let admin = AdminServer::start(&config.service, registry, readiness).await?;

    let tasks = TaskTracker::new();
    tasks.spawn(refresh_lag(
        js.clone(),
        metrics.pending.clone(),
        shutdown.clone(),
    ));
    let worker = Arc::new(Worker {
        js: js.clone(),
        store,
        metrics,
        max_attempts: config.jobs.media_max_attempts,
        retry_delay: config.jobs.media_retry_delay,
    });
    tasks.spawn({
        let shutdown = shutdown.clone();
        let consumer_config = consumer_config(&config.jobs);
        let concurrency = config.jobs.media_concurrency;
        async move {
            if !Foundation::wait_for_stream(&js, &stream_ready, &shutdown).await {
                return;
            }
            let Ok(consumer) =
                sidechain_infra::retry::until_ok("create the media consumer", &shutdown, || {
                    nats::durable_consumer(&js, consumer_config.clone())
                })
                .await
            else {
                return;
            };
            consuming.store(true, Ordering::Relaxed);
            tracing::info!("consuming uploads");
            while !shutdown.is_cancelled() {
                let messages = match consumer.messages().await {
                    Ok(messages) => messages,
                    Err(err) => {
                        tracing::warn!(error = %err, "pulling uploads failed; retrying");
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                            () = shutdown.cancelled() => break,
                        }
                    }
                };
                messages
                    .take_until(shutdown.cancelled())
                    .for_each_concurrent(concurrency, |message| {
                        let worker = worker.clone();
                        async move {
                            match message {
                                Ok(message) => worker.handle(message).await,
                                Err(err) => tracing::warn!(error = %err, "pull failed"),
                            }
                        }
                    })
                    .await;
            }
            consuming.store(false, Ordering::Relaxed);
        }
    });

    let stopping = Stopping::new(admin, nats_client).drain(tasks, config.service.shutdown_timeout);
    Ok(Running::spawn(
        "media service",
        None,
        until_cancelled(shutdown),
        stopping,
    ))
}

/// Keeps the consumer-lag gauge current (every 5 s).
async fn refresh_lag(js: jetstream::Context, pending: Gauge, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let consumer: Result<jetstream::consumer::PullConsumer, _> = js
            .get_consumer_from_stream(MEDIA_CONSUMER, sidechain_events::subjects::EVENTS_STREAM)
            .await;
        if let Ok(mut consumer) = consumer
            && let Ok(info) = consumer.info().await
        {
            pending.set(info.num_pending as i64);
        }
    }
}

/// Why an attempt did not finish.
#[derive(Debug)]
enum Failure {
    /// The file cannot be used: reject now.
    Permanent(&'static str, String),
    /// Something may come back: retry, up to the attempt limit.
    Passing(&'static str, String),
}

#[derive(Debug)]
struct Worker {
    js: jetstream::Context,
    store: Arc<dyn MediaStore>,
    metrics: Metrics,
    max_attempts: u64,
    retry_delay: Duration,
}

impl Worker {
    #[tracing::instrument(skip_all, fields(event_id, post_id))]
    async fn handle(&self, message: jetstream::Message) {
        let event = match sidechain_events::decode_event(&message.payload) {
            Ok(event) => event,
            Err(err) => {
                tracing::error!(error = %err, "undecodable event; acknowledged and skipped");
                self.metrics.fail("bad_event");
                self.ack(&message, AckKind::Ack).await;
                return;
            }
        };
        let Payload::AudioUploaded(uploaded) = event.payload() else {
            self.ack(&message, AckKind::Ack).await;
            return;
        };
        let span = tracing::Span::current();
        span.record("event_id", tracing::field::display(event.id()));
        span.record("post_id", uploaded.post_id.as_str());
        let attempts = message
            .info()
            .map_or(1, |info| info.delivered.max(1) as u64);

        self.metrics.in_flight.inc();
        let started = Instant::now();
        let result = self.process(&event, uploaded).await;
        self.metrics.in_flight.dec();
        self.metrics
            .duration
            .get_or_create(&FormatLabels {
                format: uploaded.format.clone(),
            })
            .observe(started.elapsed().as_secs_f64());

        let rejection = match result {
            Ok(()) => {
                self.metrics.finish("processed");
                self.ack(&message, AckKind::Ack).await;
                return;
            }
            Err(Failure::Permanent(reason, text)) => {
                self.metrics.fail(reason);
                text
            }
            Err(Failure::Passing(reason, text)) => {
                self.metrics.fail(reason);
                if attempts < self.max_attempts {
                    tracing::warn!(attempts, error = %text, "processing failed; will retry");
                    self.metrics.finish("retried");
                    self.ack(&message, AckKind::Nak(Some(self.retry_delay)))
                        .await;
                    return;
                }
                self.metrics.fail("gave_up");
                format!("gave up after {attempts} attempts: {text}")
            }
        };
        tracing::warn!(attempts, reason = %rejection, "upload rejected");
        // The uploader reads the verdict at GET /api/v1/audio/{id}/status; best effort (the
        // event below is the record).
        let status = serde_json::json!({"status": "rejected", "reason": rejection});
        self.put_status(&uploaded.post_id, &status).await;
        let rejected = Payload::AudioRejected(AudioRejected {
            post_id: uploaded.post_id.clone(),
            reason: rejection,
            attempts: attempts as i32,
        });
        match self.publish(&event, rejected).await {
            Ok(()) => {
                self.metrics.finish("rejected");
                self.ack(&message, AckKind::Ack).await;
            }
            Err(Failure::Passing(reason, text) | Failure::Permanent(reason, text)) => {
                self.metrics.fail(reason);
                tracing::warn!(error = %text, "rejection not stored; will retry");
                self.ack(&message, AckKind::Nak(Some(self.retry_delay)))
                    .await;
            }
        }
    }

    async fn process(&self, event: &DecodedEvent, uploaded: &AudioUploaded) -> Result<(), Failure> {
        let (_, mut reader) =
            self.store
                .get(&uploaded.object_key, 0)
                .await
                .map_err(|err| match err {
                    StoreError::NotFound | StoreError::InvalidKey => Failure::Permanent(
                        "object_missing",
                        "the uploaded file is not in the media store".to_owned(),
                    ),
                    other => Failure::Passing("store_unavailable", other.to_string()),
                })?;
        let local = tempfile::tempfile()
            .map_err(|err| Failure::Passing("store_unavailable", err.to_string()))?;
        let mut spool = tokio::fs::File::from_std(
            local
                .try_clone()
                .map_err(|err| Failure::Passing("store_unavailable", err.to_string()))?,
        );
        tokio::io::copy(&mut reader, &mut spool)
            .await
            .map_err(|err| Failure::Passing("store_unavailable", err.to_string()))?;
        tokio::io::AsyncWriteExt::flush(&mut spool)
            .await
            .map_err(|err| Failure::Passing("store_unavailable", err.to_string()))?;
        drop(spool);
        let format = uploaded.format.clone();
        let measured = tokio::task::spawn_blocking(move || {
            use std::io::Seek as _;
            let mut local = local;
            local
                .rewind()
                .map_err(|err| Unusable::Undecodable(err.to_string()))?;
            analyze::analyze(local, &format)
        })
        .await
        .map_err(|err| Failure::Passing("store_unavailable", err.to_string()))?
        .map_err(|unusable| {
            let reason = match unusable {
                Unusable::Undecodable(_) => "undecodable",
                Unusable::Corrupt(_) => "corrupt",
                Unusable::Truncated { .. } => "truncated",
                Unusable::Empty => "empty",
            };
            Failure::Permanent(reason, unusable.to_string())
        })?;

        let waveform = serde_json::to_vec(&measured.waveform)
            .map_err(|err| Failure::Passing("store_unavailable", err.to_string()))?;
        self.store
            .put(
                &format!("{}.waveform.json", uploaded.post_id),
                "application/json",
                &mut waveform.as_slice(),
            )
            .await
            .map_err(|err| Failure::Passing("store_unavailable", err.to_string()))?;
        let svg = analyze::waveform_svg(&measured.waveform);
        self.store
            .put(
                &format!("{}.waveform.svg", uploaded.post_id),
                "image/svg+xml",
                &mut svg.as_bytes(),
            )
            .await
            .map_err(|err| Failure::Passing("store_unavailable", err.to_string()))?;
        let processed = Payload::AudioProcessed(AudioProcessed {
            post_id: uploaded.post_id.clone(),
            duration_seconds: measured.duration_seconds,
            sample_rate: measured.sample_rate as i32,
            channels: measured.channels as i32,
            peak_dbfs: measured.peak_dbfs,
            loudness_lufs: measured.loudness_lufs,
            waveform_url: format!("{}/waveform.json", uploaded.audio_url),
            waveform_buckets: measured.waveform.buckets as i32,
            format: uploaded.format.clone(),
        });
        let status = serde_json::json!({
            "status": "processed",
            "duration_seconds": measured.duration_seconds,
            "sample_rate": measured.sample_rate,
            "channels": measured.channels,
            "peak_dbfs": measured.peak_dbfs,
            "loudness_lufs": measured.loudness_lufs,
        });
        self.put_status(&uploaded.post_id, &status).await;
        tracing::info!(
            duration_seconds = measured.duration_seconds,
            loudness_lufs = measured.loudness_lufs,
            "upload processed"
        );
        self.publish(event, processed).await
    }

    /// Stores the verdict on an upload as `<post id>.status.json` (best effort: logged if not).
    async fn put_status(&self, post_id: &str, status: &serde_json::Value) {
        let bytes = status.to_string().into_bytes();
        if let Err(err) = self
            .store
            .put(
                &format!("{post_id}.status.json"),
                "application/json",
                &mut bytes.as_slice(),
            )
            .await
        {
            tracing::warn!(error = %err, "status not stored");
        }
    }

    /// Publishes `payload` as the uploader's, with an id derived from the upload's event.
    async fn publish(&self, upload: &DecodedEvent, payload: Payload) -> Result<(), Failure> {
        let kind = EventKind::of(&payload);
        let id = EventId::from_uuid(uuid::Uuid::new_v5(
            &DERIVED_NAMESPACE,
            format!("{}/{}", upload.id(), kind.as_str()).as_bytes(),
        ));
        let event = NewEvent::new(id, upload.actor(), upload.actor_username(), payload);
        nats::publish_event(&self.js, &event)
            .await
            .map(|_| ())
            .map_err(|err| Failure::Passing("event_store_unavailable", err.to_string()))
    }

    async fn ack(&self, message: &jetstream::Message, kind: AckKind) {
        if let Err(err) = message.ack_with(kind).await {
            tracing::warn!(error = %err, "acknowledgement not sent; the upload will be redelivered");
        }
    }
}
