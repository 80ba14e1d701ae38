//! Graceful shutdown: one `CancellationToken` for the whole process, cancelled by SIGTERM or
//! SIGINT, and a drain of tracked tasks with a time cap.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Default cap on draining in-flight work after a shutdown signal.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A token cancelled on the first SIGTERM or SIGINT (Ctrl-C).
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received; stopping intake and draining");
        cancel.cancel();
    });
    token
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        }
        _ => {
            // Without signal handlers the process still stops on Ctrl-C.
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

/// Closes `tracker` to new tasks and waits for the running ones, at most `cap`.
/// Returns `false` if the cap was hit (the remaining tasks are abandoned).
pub async fn drain(tracker: &TaskTracker, cap: Duration) -> bool {
    tracker.close();
    match tokio::time::timeout(cap, tracker.wait()).await {
        Ok(()) => true,
        Err(_) => {
            tracing::warn!(
                remaining = tracker.len(),
                cap_seconds = cap.as_secs(),
                "drain cap reached; abandoning in-flight work"
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn drain_waits_for_running_tasks() {
        let tracker = TaskTracker::new();
        tracker.spawn(tokio::time::sleep(Duration::from_secs(3)));
        assert!(drain(&tracker, Duration::from_secs(30)).await);
        assert!(tracker.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn drain_gives_up_at_the_cap() {
        let tracker = TaskTracker::new();
        tracker.spawn(tokio::time::sleep(Duration::from_secs(3600)));
        assert!(!drain(&tracker, Duration::from_secs(30)).await);
    }
}
