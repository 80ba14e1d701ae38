//! The Sidechain feedback service.
//!
//! Skeleton: connects to NATS and Redis, ensures the `EVENTS` stream, serves metrics and
//! health, and shuts down cleanly. Its work is added on top of this.

pub mod config;

use sidechain_infra::service::{AdminServer, Foundation, Running};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;

/// Name in logs, traces and the NATS connection.
pub const SERVICE: &str = "sidechain-feedback";

/// Runs until `shutdown` is cancelled and in-flight work has drained.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    start(config, shutdown).await?.wait().await
}

/// Connects and starts working; returns where the admin server listens.
pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<Running> {
    let foundation = Foundation::connect(SERVICE, &config.service, &shutdown).await?;
    let stream_ready = foundation.stream_ready();
    let Foundation {
        jetstream,
        registry,
        readiness,
        ..
    } = foundation;
    let admin = AdminServer::start(config.service.metrics_addr(), registry, readiness).await?;
    let admin_addr = admin.addr;

    let tasks = TaskTracker::new();
    tasks.spawn({
        let (settings, shutdown) = (config.service.stream.clone(), shutdown.clone());
        async move { Foundation::ensure_stream(&jetstream, &settings, &stream_ready, &shutdown).await }
    });

    let drain_cap = config.service.shutdown_timeout;
    let task = tokio::spawn(async move {
        tracing::info!(%admin_addr, "feedback service started");
        shutdown.cancelled().await;
        sidechain_infra::shutdown::drain(&tasks, drain_cap).await;
        admin.stop().await?;
        tracing::info!("feedback service stopped");
        Ok(())
    });
    Ok(Running::new(admin_addr, None, task))
}
