//! Gorse's health: checked every `GORSE_HEALTH_INTERVAL` with `GET /api/health/ready`, kept in
//! a gauge, published to the KV bucket `status` (key `gorse`) at every check, logged when it
//! flips. Turning healthy half-opens the circuit breaker and flushes the dead-letter list at
//! once.

use std::sync::Arc;
use std::time::Duration;

use sidechain_events::now_ms;
use sidechain_events::rpc::GorseStatus;
use sidechain_infra::status::GorseStatusPublisher;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::dead_letter::DeadLetters;
use crate::delivery::Delivery;
use crate::metrics::FeedbackMetrics;

/// Checks Gorse until shutdown.
pub async fn watch(
    delivery: Delivery,
    publisher: GorseStatusPublisher,
    flush_now: Arc<Notify>,
    metrics: FeedbackMetrics,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut last: Option<bool> = None;
    let mut changed_at = now_ms();
    loop {
        let check = delivery.gorse().ready().await;
        let healthy = check.is_ok();
        if last != Some(healthy) {
            changed_at = now_ms();
            match (&check, last) {
                (Ok(()), _) => tracing::info!("Gorse is ready"),
                (Err(err), None) => {
                    tracing::warn!(error = %err, "Gorse is not ready; feedback goes to the dead-letter list")
                }
                (Err(err), Some(_)) => {
                    tracing::warn!(error = %err, "Gorse became unhealthy; feedback goes to the dead-letter list")
                }
            }
            if healthy {
                delivery.gorse().breaker().half_open();
                flush_now.notify_one();
            }
            last = Some(healthy);
        }
        metrics.gorse_healthy.set(i64::from(healthy));
        let status = GorseStatus {
            healthy,
            checked_at_ms: now_ms(),
            changed_at_ms: changed_at,
        };
        if let Err(err) = publisher.publish(status).await {
            tracing::debug!(error = %err, "could not publish Gorse status");
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Flushes the dead-letter list at start, every `interval`, and whenever `flush_now` is
/// notified, until shutdown.
pub async fn flush_dead_letters(
    dead_letters: DeadLetters,
    delivery: Delivery,
    flush_now: Arc<Notify>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        if let Err(err) = dead_letters.flush(&delivery).await {
            tracing::warn!(error = %err, "dead-letter flush failed (Redis)");
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = flush_now.notified() => {}
            () = shutdown.cancelled() => return,
        }
    }
}
