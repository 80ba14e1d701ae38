//! Start-up steps that depend on another server (create the stream, load a script) are retried
//! with capped exponential backoff until they succeed or shutdown begins, so services can start
//! in any order.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};
use tokio_util::sync::CancellationToken;

/// Shutdown began before the step succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shut down while waiting for {0}")]
pub struct Cancelled(pub &'static str);

/// Runs `step` until it returns `Ok`, waiting 100 ms doubling up to 5 s (jittered) between
/// attempts and logging each failure. Returns `Err(Cancelled)` if `shutdown` fires first.
pub async fn until_ok<T, E, F, Fut>(
    what: &'static str,
    shutdown: &CancellationToken,
    step: F,
) -> Result<T, Cancelled>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times();
    let attempt = step
        .retry(backoff)
        .notify(|err: &E, wait: Duration| {
            tracing::warn!(step = what, error = %err, retry_in_ms = wait.as_millis() as u64, "start-up step failed; retrying");
        });
    tokio::select! {
        result = attempt => Ok(result.unwrap_or_else(|_| unreachable!("retries forever"))),
        () = shutdown.cancelled() => Err(Cancelled(what)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn retries_until_the_step_succeeds() {
        let calls = AtomicU32::new(0);
        let result = until_ok("flaky", &CancellationToken::new(), || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0..=2 => Err("not yet"),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(result, Ok(3));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_interrupts_the_wait() {
        let shutdown = CancellationToken::new();
        let stopper = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            stopper.cancel();
        });
        let result: Result<(), _> =
            until_ok("never", &shutdown, || async { Err::<(), _>("down") }).await;
        assert_eq!(result, Err(Cancelled("never")));
    }
}
