//! The Sidechain feedback service: streams what users do into the Gorse recommender.
//!
//! A durable JetStream pull consumer (shared by every instance) reads the `EVENTS` stream;
//! each event is mapped to Gorse operations ([`mapping`]), batched ([`batch`]: 100 events or
//! 5 s), and sent with retries, backoff and a circuit breaker ([`delivery`],
//! `sidechain-gorse`). A batch Gorse cannot take goes to the Redis dead-letter list
//! ([`dead_letter`]), flushed every 5 minutes and as soon as Gorse is healthy again
//! ([`health`]). Messages are acknowledged only once their batch is in Gorse or in Redis, so
//! no feedback is lost, and no user request ever waits for Gorse. Items Gorse lacks are written
//! from the cache service's read models, or as hidden placeholders resolved later
//! ([`reconcile`]).

pub mod batch;
pub mod config;
pub mod consumer;
pub mod dead_letter;
pub mod delivery;
pub mod health;
pub mod mapping;
pub mod metrics;
pub mod reconcile;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use sidechain_events::subjects::{EVENTS_ALL, EVENTS_STREAM, FEEDBACK_CONSUMER};
use sidechain_gorse::GorseClient;
use sidechain_infra::nats;
use sidechain_infra::service::{AdminServer, Foundation, Running, Stopping, until_cancelled};
use sidechain_infra::status::GorseStatusPublisher;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;

use crate::consumer::Pipeline;
use crate::dead_letter::DeadLetters;
use crate::delivery::Delivery;
use crate::metrics::FeedbackMetrics;
use crate::reconcile::Reconciler;

/// Name in logs, traces and the NATS connection.
pub const SERVICE: &str = "sidechain-feedback";

/// How often queue-depth gauges are refreshed.
const GAUGE_INTERVAL: Duration = Duration::from_secs(5);

/// Runs until `shutdown` is cancelled and the batch in hand is settled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    start(config, shutdown).await?.wait().await
}

/// The durable consumer's configuration.
pub fn consumer_config(config: &config::PipelineConfig) -> pull::Config {
    pull::Config {
        durable_name: Some(FEEDBACK_CONSUMER.to_owned()),
        description: Some("Sidechain feedback service: events to Gorse".to_owned()),
        filter_subject: EVENTS_ALL.to_owned(),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: config.feedback_ack_wait,
        max_deliver: config.feedback_max_deliver,
        max_ack_pending: config.feedback_max_ack_pending,
        deliver_policy: jetstream::consumer::DeliverPolicy::All,
        ..Default::default()
    }
}

/// Connects and starts consuming; returns where the admin server listens.
pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<Running> {
    let foundation = Foundation::connect(SERVICE, &config.service, &shutdown).await?;
    let stream_ready = foundation.stream_ready();
    let Foundation {
        nats: nats_client,
        jetstream: js,
        redis,
        mut registry,
        readiness,
        ..
    } = foundation;
    let metrics = FeedbackMetrics::register(&mut registry);
    let reconciler = Reconciler::new(
        nats_client.clone(),
        redis.clone(),
        config.reconcile.clone(),
        &mut registry,
    );
    let delivery = Delivery::new(
        GorseClient::new(&config.gorse, &mut registry)?,
        &mut registry,
    )
    .with_reconciler(reconciler.clone());
    let dead_letters = DeadLetters::new(redis, metrics.clone());
    let consuming = Arc::new(AtomicBool::new(false));
    let readiness = readiness.with_flag("consumer", consuming.clone(), "not consuming yet");
    let admin = AdminServer::start(&config.service, registry, readiness).await?;

    let tasks = TaskTracker::new();
    let flush_now = Arc::new(Notify::new());
    let pipeline = Pipeline {
        delivery: delivery.clone(),
        dead_letters: dead_letters.clone(),
        metrics: metrics.clone(),
        batch_size: config.pipeline.gorse_batch_size,
        batch_timeout: config.pipeline.gorse_batch_timeout,
        ack_wait: config.pipeline.feedback_ack_wait,
        max_deliver: config.pipeline.feedback_max_deliver,
    };
    tasks.spawn({
        let (js, shutdown) = (js.clone(), shutdown.clone());
        let consumer_config = consumer_config(&config.pipeline);
        async move {
            if !Foundation::wait_for_stream(&js, &stream_ready, &shutdown).await {
                return;
            }
            let Ok(consumer) =
                sidechain_infra::retry::until_ok("create the feedback consumer", &shutdown, || {
                    nats::durable_consumer(&js, consumer_config.clone())
                })
                .await
            else {
                return;
            };
            consuming.store(true, Ordering::Relaxed);
            tracing::info!("consuming events");
            pipeline.run(consumer, shutdown).await;
            consuming.store(false, Ordering::Relaxed);
        }
    });
    tasks.spawn(health::watch(
        delivery.clone(),
        GorseStatusPublisher::new(js.clone()),
        flush_now.clone(),
        metrics.clone(),
        config.pipeline.gorse_health_interval,
        shutdown.clone(),
    ));
    tasks.spawn(reconciler.run(delivery.gorse().clone(), shutdown.clone()));
    tasks.spawn(health::flush_dead_letters(
        dead_letters.clone(),
        delivery,
        flush_now,
        config.pipeline.gorse_dlq_flush_interval,
        shutdown.clone(),
    ));
    tasks.spawn(refresh_gauges(js, dead_letters, metrics, shutdown.clone()));

    let stopping = Stopping::new(admin, nats_client).drain(tasks, config.service.shutdown_timeout);
    Ok(Running::spawn(
        "feedback service",
        None,
        until_cancelled(shutdown),
        stopping,
    ))
}

/// Keeps the queue-depth gauges current: dead-letter lengths and the consumer's backlog.
async fn refresh_gauges(
    js: jetstream::Context,
    dead_letters: DeadLetters,
    metrics: FeedbackMetrics,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(GAUGE_INTERVAL);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = shutdown.cancelled() => return,
        }
        if let Ok(len) = dead_letters.len().await {
            metrics.dead_letter_length.set(len as i64);
        }
        if let Ok(len) = dead_letters.parked_len().await {
            metrics.parked_length.set(len as i64);
        }
        let consumer: Result<jetstream::consumer::PullConsumer, _> = js
            .get_consumer_from_stream(FEEDBACK_CONSUMER, EVENTS_STREAM)
            .await;
        if let Ok(mut consumer) = consumer
            && let Ok(info) = consumer.info().await
        {
            metrics.consumer_pending.set(info.num_pending as i64);
            metrics
                .consumer_ack_pending
                .set(info.num_ack_pending as i64);
        }
    }
}
