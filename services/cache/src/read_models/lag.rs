//! The consumer-lag gauge (`sidechain_cache_consumer_lag_messages`): events in the stream not
//! yet applied, i.e. the stream's last sequence minus `readmodel:applied_seq`.
//!
//! It is refreshed on a timer rather than after each batch, so it costs one stream-info
//! request per interval whatever the event rate, and it keeps moving while applying is stuck
//! (Redis down, a batch retrying) — exactly when an operator looks at it.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use prometheus_client::metrics::gauge::Gauge;
use redis::AsyncCommands as _;
use sidechain_events::subjects::EVENTS_STREAM;
use sidechain_infra::redis::RedisConn;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::keys;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Sets `gauge` every `interval` until `shutdown`.
pub(super) async fn refresh(
    js: jetstream::Context,
    mut redis: RedisConn,
    gauge: Gauge,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // While Redis is down nothing is applied, so the last value read still holds.
    let mut applied: Option<u64> = None;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.cancelled() => return,
        }
        // Read before the stream: a batch committed in between can only shrink the lag.
        match redis.get::<_, Option<u64>>(keys::APPLIED_SEQ).await {
            // Missing: nothing applied yet, or Redis lost its data and a replay is due.
            Ok(seq) => applied = Some(seq.unwrap_or(0)),
            Err(err) => {
                tracing::debug!(error = %err, "applied sequence unreadable; using the last one read")
            }
        }
        let Some(applied) = applied else { continue };
        match stream_state(&js).await {
            Ok(stream) => {
                let lag = stream.last_sequence.saturating_sub(applied);
                gauge.set(i64::try_from(lag).unwrap_or(i64::MAX));
            }
            Err(err) => tracing::debug!(error = %err, "consumer lag not refreshed"),
        }
    }
}

/// The `EVENTS` stream's state (one request).
pub(super) async fn stream_state(js: &jetstream::Context) -> Result<stream::State, Error> {
    Ok(js
        .get_stream(EVENTS_STREAM)
        .await?
        .cached_info()
        .state
        .clone())
}
