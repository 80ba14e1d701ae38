//! Read models built from the `EVENTS` stream.
//!
//! One durable consumer (`cache-read-models`) is shared by every cache instance with
//! `AckPolicy::All` and `max_ack_pending` equal to the batch size, so only one batch is ever
//! in flight: events are applied in stream order even with several instances.
//!
//! Each batch is one Redis transaction (`MULTI`/`EXEC`) that also records the last applied
//! stream sequence (`readmodel:applied_seq`); events at or below it are skipped, so
//! redeliveries and replays change nothing. When that key is missing while the consumer is
//! past the start of the stream, Redis lost its data: the consumer is reset to the first event
//! and everything is rebuilt by replaying the stream.
//!
//! After a commit the effects are broadcast on `cache.invalidate` (every instance drops its
//! in-memory copies) and logouts on `auth.revoked` (every edge drops the session).

pub mod apply;
mod lag;

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::{self, AckKind, message::Message};
use futures::{FutureExt as _, StreamExt as _};
use prost::Message as _;
use redis::AsyncCommands as _;
use sidechain_events::rpc::CacheInvalidation;
use sidechain_events::subjects::{
    AUTH_REVOKED, CACHE_CONSUMER, CACHE_INVALIDATE, EVENTS_ALL, EVENTS_STREAM,
};
use sidechain_events::{DecodedEvent, decode_event};
use sidechain_infra::redis::RedisConn;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::config::ModelConfig;
use crate::keys;
use crate::metrics::CacheMetrics;
use apply::{Effects, Scripts};

/// How long the rebuild lock is held.
const REBUILD_LOCK_TTL: Duration = Duration::from_secs(30);

/// The consumer's configuration.
pub fn consumer_config(batch: usize) -> pull::Config {
    pull::Config {
        durable_name: Some(CACHE_CONSUMER.to_owned()),
        description: Some("Sidechain cache service: read models".to_owned()),
        filter_subject: EVENTS_ALL.to_owned(),
        ack_policy: AckPolicy::All,
        ack_wait: Duration::from_secs(30),
        max_ack_pending: batch as i64,
        deliver_policy: DeliverPolicy::All,
        ..Default::default()
    }
}

/// What happened to a batch.
enum Applied {
    /// Committed (or already applied earlier).
    Done(Effects, u64),
    /// Redis lost its data; the consumer was reset and the stream will be replayed.
    Rebuilding,
}

/// Applies events to the read models.
#[derive(Debug)]
pub struct Applier {
    /// JetStream, for the consumer and stream info.
    pub js: jetstream::Context,
    /// A connection used by the applier alone.
    pub redis: RedisConn,
    /// NATS, for broadcasts.
    pub nats: async_nats::Client,
    /// Limits.
    pub config: ModelConfig,
    /// Metrics.
    pub metrics: CacheMetrics,
    /// Set once the consumer exists (readiness).
    pub ready: std::sync::Arc<std::sync::atomic::AtomicBool>,
    scripts: Scripts,
    scripts_loaded: bool,
}

impl Applier {
    /// An applier (scripts are loaded on first use).
    pub fn new(
        js: jetstream::Context,
        redis: RedisConn,
        nats: async_nats::Client,
        config: ModelConfig,
        metrics: CacheMetrics,
        ready: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Self {
        Self {
            js,
            redis,
            nats,
            config,
            metrics,
            ready,
            scripts: Scripts::new(),
            scripts_loaded: false,
        }
    }

    /// Applies events until shutdown, refreshing the consumer-lag gauge alongside.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let lag = lag::refresh(
            self.js.clone(),
            self.redis.clone(),
            self.metrics.consumer_lag.clone(),
            self.config.consumer_lag_interval,
            shutdown.clone(),
        );
        tokio::join!(self.apply_until_shutdown(&shutdown), lag);
    }

    async fn apply_until_shutdown(&mut self, shutdown: &CancellationToken) {
        let batch = self.config.apply_batch;
        while !shutdown.is_cancelled() {
            let consumer = match sidechain_infra::retry::until_ok(
                "create the read-model consumer",
                shutdown,
                || sidechain_infra::nats::durable_consumer(&self.js, consumer_config(batch)),
            )
            .await
            {
                Ok(consumer) => consumer,
                Err(_) => return,
            };
            self.ready.store(true, std::sync::atomic::Ordering::Relaxed);
            self.consume(consumer, shutdown).await;
        }
    }

    async fn consume(&mut self, consumer: PullConsumer, shutdown: &CancellationToken) {
        let mut messages = match consumer
            .stream()
            .max_messages_per_batch(self.config.apply_batch)
            .heartbeat(Duration::from_secs(5))
            .messages()
            .await
        {
            Ok(messages) => messages,
            Err(err) => {
                tracing::warn!(error = %err, "cannot pull read-model events; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = shutdown.cancelled() => {}
                }
                return;
            }
        };
        loop {
            let first = tokio::select! {
                next = messages.next() => next,
                () = shutdown.cancelled() => return,
            };
            let first = match first {
                Some(Ok(message)) => message,
                Some(Err(err)) => {
                    tracing::debug!(error = %err, "read-model pull hiccup");
                    continue;
                }
                None => return,
            };
            // Take whatever else is already here: large batches under load, low latency when idle.
            let mut batch = vec![first];
            while batch.len() < self.config.apply_batch {
                match messages.next().now_or_never() {
                    Some(Some(Ok(message))) => batch.push(message),
                    _ => break,
                }
            }
            match self.apply_until_done(&batch, shutdown).await {
                Some(Applied::Done(effects, applied_seq)) => {
                    if let Some(last) = batch.last()
                        && let Err(err) = last.ack_with(AckKind::Ack).await
                    {
                        tracing::warn!(error = %err, "read-model ack not sent; the batch will be skipped on redelivery");
                    }
                    self.broadcast(effects, applied_seq, false).await;
                }
                Some(Applied::Rebuilding) => {
                    self.broadcast(Effects::default(), 0, true).await;
                    return;
                }
                None => return,
            }
        }
    }

    /// Applies a batch, retrying with backoff while Redis fails (and telling JetStream the batch
    /// is still being worked on). `None` when shutdown came first.
    async fn apply_until_done(
        &mut self,
        batch: &[Message],
        shutdown: &CancellationToken,
    ) -> Option<Applied> {
        let mut delay = Duration::from_millis(100);
        let mut last_progress = Instant::now();
        loop {
            let started = Instant::now();
            let span = tracing::info_span!(
                "cache apply",
                messages = batch.len(),
                otel.kind = "consumer",
                messaging.system = "nats"
            );
            match self.apply(batch).instrument(span).await {
                Ok(applied) => {
                    self.metrics.apply_took(started.elapsed().as_secs_f64());
                    return Some(applied);
                }
                Err(err) => {
                    self.metrics.apply_failed();
                    self.scripts_loaded = false;
                    tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "cannot apply events to Redis; retrying");
                }
            }
            if last_progress.elapsed() > Duration::from_secs(10) {
                for message in batch {
                    let _ = message.ack_with(AckKind::Progress).await;
                }
                last_progress = Instant::now();
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.cancelled() => return None,
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    async fn apply(&mut self, batch: &[Message]) -> Result<Applied, redis::RedisError> {
        let mut conn = self.redis.clone();
        if !self.scripts_loaded {
            for script in self.scripts.all() {
                script.prepare_invoke().load_async(&mut conn).await?;
            }
            self.scripts_loaded = true;
        }
        let applied: Option<u64> = conn.get(keys::APPLIED_SEQ).await?;
        let sequences: Vec<u64> = batch
            .iter()
            .map(|m| m.info().map(|i| i.stream_sequence).unwrap_or(0))
            .collect();
        let first_seq = sequences.first().copied().unwrap_or(0);
        let last_seq = sequences.iter().copied().max().unwrap_or(0);
        if applied.is_none() && self.is_past_stream_start(first_seq).await {
            self.reset_for_rebuild(&mut conn).await?;
            return Ok(Applied::Rebuilding);
        }
        let floor = applied.unwrap_or(0);
        let mut effects = Effects::default();
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut kinds = Vec::new();
        for (message, seq) in batch.iter().zip(&sequences) {
            if *seq <= floor {
                continue;
            }
            match decode_event(&message.payload) {
                Ok(event) => {
                    apply::apply(&mut pipe, &self.scripts, &self.config, &event, &mut effects);
                    kinds.push(event.kind().as_str());
                    trace_applied(&event, message);
                }
                Err(err) => {
                    self.metrics.poison();
                    tracing::error!(error = %err, stream_sequence = seq, "undecodable event skipped by the read models");
                }
            }
        }
        if last_seq <= floor {
            return Ok(Applied::Done(effects, floor));
        }
        pipe.set(keys::APPLIED_SEQ, last_seq).ignore();
        let fanouts: Vec<Vec<String>> = pipe.query_async(&mut conn).await?;
        for follower in fanouts.iter().flatten() {
            if let Ok(follower) = follower.parse() {
                effects.scopes.extend(apply::fanned_out_scopes(follower));
            }
        }
        for kind in kinds {
            self.metrics.applied(kind);
        }
        self.metrics.applied_seq.set(last_seq as i64);
        Ok(Applied::Done(effects, last_seq))
    }

    async fn is_past_stream_start(&self, first_seq: u64) -> bool {
        lag::stream_state(&self.js)
            .await
            .is_ok_and(|state| first_seq > state.first_sequence)
    }

    /// Resets the consumer to the first event (one instance does it, under a lock).
    async fn reset_for_rebuild(&self, conn: &mut RedisConn) -> Result<(), redis::RedisError> {
        let locked: Option<String> = redis::cmd("SET")
            .arg(keys::REBUILD_LOCK)
            .arg("1")
            .arg("NX")
            .arg("PX")
            .arg(REBUILD_LOCK_TTL.as_millis() as u64)
            .query_async(conn)
            .await?;
        if locked.is_some() {
            tracing::warn!("Redis has no read models; rebuilding them by replaying the stream");
            self.metrics.stream_rebuild();
            if let Err(err) = self
                .js
                .delete_consumer_from_stream(CACHE_CONSUMER, EVENTS_STREAM)
                .await
            {
                tracing::warn!(error = %err, "could not reset the read-model consumer");
            }
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }

    async fn broadcast(&self, effects: Effects, applied_seq: u64, everything: bool) {
        for revoked in &effects.revoked {
            if let Err(err) = self
                .nats
                .publish(AUTH_REVOKED, revoked.encode_to_vec().into())
                .await
            {
                tracing::warn!(error = %err, "could not broadcast a revocation");
            }
        }
        let invalidation = CacheInvalidation {
            page_scopes: effects.scopes.iter().map(ToString::to_string).collect(),
            post_ids: effects.posts.into_iter().collect(),
            following_of: effects.following_of.into_iter().collect(),
            everything,
            applied_seq,
        };
        if let Err(err) = self
            .nats
            .publish(CACHE_INVALIDATE, invalidation.encode_to_vec().into())
            .await
        {
            tracing::warn!(error = %err, "could not broadcast invalidations; in-memory copies expire on their own");
        }
    }
}

fn trace_applied(event: &DecodedEvent, message: &Message) {
    let span = sidechain_telemetry::message_span!(
        "cache apply event",
        kind = "consumer",
        operation = "process",
        message,
        messaging.message.id = %event.id(),
    );
    span.in_scope(|| tracing::debug!(kind = event.kind().as_str(), "applied"));
}
