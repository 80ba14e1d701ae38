//! Gorse's health: checked every `GORSE_HEALTH_INTERVAL` with `GET /api/health/ready` and, when
//! ready, an authenticated `GET /api/latest?n=1` (Gorse's health routes skip the API key, so
//! only an authenticated call reveals a wrong `GORSE_API_KEY`). The state (healthy, unhealthy,
//! unauthorized) is kept in gauges, published to the KV bucket `status` (key `gorse`) at every
//! check, logged when it changes. Turning healthy half-opens the circuit breaker and flushes
//! the dead-letter list at once.

use std::sync::Arc;
use std::time::Duration;

use sidechain_events::now_ms;
use sidechain_events::rpc::{GorseState, GorseStatus};
use sidechain_gorse::{GorseClient, GorseError};
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
    let mut last: Option<GorseState> = None;
    let mut changed_at = now_ms();
    loop {
        let (state, error) = check(delivery.gorse()).await;
        if last != Some(state) {
            changed_at = now_ms();
            let error = error.as_ref().map(ToString::to_string);
            match state {
                GorseState::Healthy => tracing::info!("Gorse is ready and accepts the API key"),
                GorseState::Unauthorized => tracing::error!(
                    error = error.as_deref(),
                    "Gorse refuses GORSE_API_KEY; feedback waits in the dead-letter list until the key matches"
                ),
                _ if last.is_none() => {
                    tracing::warn!(
                        error = error.as_deref(),
                        "Gorse is not ready; feedback goes to the dead-letter list"
                    )
                }
                _ => {
                    tracing::warn!(
                        error = error.as_deref(),
                        "Gorse became unhealthy; feedback goes to the dead-letter list"
                    )
                }
            }
            if state == GorseState::Healthy {
                delivery.gorse().breaker().half_open();
                flush_now.notify_one();
            }
            last = Some(state);
        }
        let healthy = state == GorseState::Healthy;
        metrics.gorse_healthy.set(i64::from(healthy));
        metrics
            .gorse_unauthorized
            .set(i64::from(state == GorseState::Unauthorized));
        let status = GorseStatus {
            healthy,
            checked_at_ms: now_ms(),
            changed_at_ms: changed_at,
            state: state.into(),
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

/// Readiness first, then the API key (readiness does not check it).
async fn check(gorse: &GorseClient) -> (GorseState, Option<GorseError>) {
    if let Err(err) = gorse.ready().await {
        return (GorseState::Unhealthy, Some(err));
    }
    match gorse.authorized().await {
        Ok(()) => (GorseState::Healthy, None),
        Err(err @ GorseError::Unauthorized { .. }) => (GorseState::Unauthorized, Some(err)),
        Err(err) => (GorseState::Unhealthy, Some(err)),
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
