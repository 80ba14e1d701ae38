//! What every service is configured with and how it brings up its admin port: the settings
//! shared by edge, feedback and cache, loaded once so each reads the same variables the same way.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;
use sidechain_config::{ConfigError, Source};
use sidechain_telemetry::TelemetryConfig;

use crate::http_server::{ConnectionLimits, ConnectionMetrics, HttpTimeouts};
use crate::nats::{NatsConfig, StreamConfig};
use crate::redis::RedisConfig;

/// Settings every service has.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Logs and traces.
    pub telemetry: TelemetryConfig,
    /// NATS connection.
    pub nats: NatsConfig,
    /// The `EVENTS` stream's limits (every service ensures the stream exists at start).
    pub stream: StreamConfig,
    /// Redis connection.
    pub redis: RedisConfig,
    /// `BIND_ADDRESS`: interface for the service's listeners (default all interfaces).
    pub bind_address: IpAddr,
    /// `METRICS_PORT`: `/metrics` and `/health/*` (0 picks a free port, for tests).
    pub metrics_port: u16,
    /// `METRICS_ENABLED`: `false` leaves `/metrics` out of the admin server (404); the health
    /// endpoints stay, since orchestrators need them.
    pub metrics_enabled: bool,
    /// `SHUTDOWN_TIMEOUT`: cap on draining in-flight work after SIGTERM.
    pub shutdown_timeout: Duration,
    /// `HTTP_HEADER_READ_TIMEOUT` (default 5 s) and `HTTP_IDLE_TIMEOUT` (default 75 s), applied
    /// to every HTTP listener of the service (the admin port, the edge's API).
    pub http_timeouts: HttpTimeouts,
}

/// Connections the admin port keeps open at once.
pub const ADMIN_MAX_CONNECTIONS: usize = 64;

#[derive(Debug, Deserialize)]
struct Listen {
    #[serde(default = "all_interfaces")]
    bind_address: IpAddr,
    #[serde(default)]
    metrics_port: Option<u16>,
    #[serde(default = "enabled")]
    metrics_enabled: bool,
    #[serde(
        default = "default_shutdown_timeout",
        with = "sidechain_config::duration"
    )]
    shutdown_timeout: Duration,
    #[serde(
        default = "default_header_read_timeout",
        with = "sidechain_config::duration"
    )]
    http_header_read_timeout: Duration,
    #[serde(default = "default_idle_timeout", with = "sidechain_config::duration")]
    http_idle_timeout: Duration,
}

fn default_header_read_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_idle_timeout() -> Duration {
    Duration::from_secs(75)
}

fn all_interfaces() -> IpAddr {
    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
}

fn enabled() -> bool {
    true
}

fn default_shutdown_timeout() -> Duration {
    crate::shutdown::DEFAULT_DRAIN_TIMEOUT
}

impl ServiceConfig {
    /// Reads the shared settings; `default_metrics_port` is the service's documented port.
    pub fn from_source(source: &Source, default_metrics_port: u16) -> Result<Self, ConfigError> {
        let listen: Listen = sidechain_config::load(source)?;
        for (var, value) in [
            ("HTTP_HEADER_READ_TIMEOUT", listen.http_header_read_timeout),
            ("HTTP_IDLE_TIMEOUT", listen.http_idle_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::invalid(var, "must be more than 0"));
            }
        }
        Ok(Self {
            telemetry: TelemetryConfig::from_source(source)?,
            nats: NatsConfig::from_source(source)?,
            stream: StreamConfig::from_source(source)?,
            redis: RedisConfig::from_source(source)?,
            bind_address: listen.bind_address,
            metrics_port: listen.metrics_port.unwrap_or(default_metrics_port),
            metrics_enabled: listen.metrics_enabled,
            shutdown_timeout: listen.shutdown_timeout,
            http_timeouts: HttpTimeouts {
                header_read: listen.http_header_read_timeout,
                idle: listen.http_idle_timeout,
            },
        })
    }

    /// The admin port's connection budget: small and its own, so that a flood on another
    /// listener cannot keep `/health/live` from answering. Probes and scrapers come from a few
    /// addresses (the kubelet from the node's), so there is no separate per-address cap.
    pub fn admin_connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            timeouts: self.http_timeouts,
            max_connections: ADMIN_MAX_CONNECTIONS,
            max_connections_per_ip: ADMIN_MAX_CONNECTIONS,
        }
    }

    /// Where the admin server listens.
    pub fn metrics_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind_address, self.metrics_port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_default_metrics_port_applies_unless_set() {
        let config = ServiceConfig::from_source(&Source::default(), 9091).expect("defaults");
        assert_eq!(config.metrics_port, 9091);
        assert_eq!(config.shutdown_timeout, Duration::from_secs(30));
        let config = ServiceConfig::from_source(&Source::default().with("METRICS_PORT", "0"), 9091)
            .expect("set");
        assert_eq!(config.metrics_port, 0);
    }

    #[test]
    fn metrics_can_be_turned_off_but_not_with_nonsense() {
        let config = ServiceConfig::from_source(&Source::default(), 9091).expect("defaults");
        assert!(config.metrics_enabled);
        let source = Source::default().with("METRICS_ENABLED", "false");
        assert!(
            !ServiceConfig::from_source(&source, 9091)
                .expect("off")
                .metrics_enabled
        );
        let source = Source::default().with("METRICS_ENABLED", "nope");
        let err = ServiceConfig::from_source(&source, 9091).expect_err("not a boolean");
        assert_eq!(err.var(), "METRICS_ENABLED", "{err}");
    }

    #[tokio::test]
    async fn without_metrics_the_admin_server_still_answers_health() {
        let source = Source::from_pairs([
            ("METRICS_ENABLED", "false"),
            ("METRICS_PORT", "0"),
            ("BIND_ADDRESS", "127.0.0.1"),
        ]);
        let config = ServiceConfig::from_source(&source, 9091).expect("config");
        let readiness =
            sidechain_telemetry::admin::Readiness::new(tokio_util::sync::CancellationToken::new());
        let admin = AdminServer::start(&config, Default::default(), readiness)
            .await
            .expect("admin server");
        let port = admin.addr.port();
        let statuses = tokio::task::spawn_blocking(move || {
            ["/metrics", "/health/live", "/health/ready"].map(|path| {
                sidechain_test_support::lifecycle::http_get(port, path).map(|(status, _)| status)
            })
        })
        .await
        .expect("requests");
        assert_eq!(statuses, [Some(404), Some(200), Some(200)]);
        admin.stop().await.expect("stops");
    }

    #[test]
    fn a_bad_bind_address_is_named() {
        let source = Source::default().with("BIND_ADDRESS", "everywhere");
        let err = ServiceConfig::from_source(&source, 9090).expect_err("bad address");
        assert!(
            matches!(&err, ConfigError::Invalid { var, .. } if var == "BIND_ADDRESS"),
            "{err}"
        );
    }
}

/// A started service: where it listens, and the task that runs it until shutdown completes.
#[derive(Debug)]
pub struct Running {
    /// The admin server (metrics, health).
    pub admin_addr: SocketAddr,
    /// The public API, for services that have one (the edge).
    pub api_addr: Option<SocketAddr>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Wraps the task of a started service.
    pub fn new(
        admin_addr: SocketAddr,
        api_addr: Option<SocketAddr>,
        task: tokio::task::JoinHandle<anyhow::Result<()>>,
    ) -> Self {
        Self {
            admin_addr,
            api_addr,
            task,
        }
    }

    /// Starts the life of a service whose listeners are bound: logs that `what` started, runs
    /// `intake` (which returns once shutdown has stopped it taking work), then `stopping`.
    pub fn spawn(
        what: &'static str,
        api_addr: Option<SocketAddr>,
        intake: impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
        stopping: Stopping,
    ) -> Self {
        let admin_addr = stopping.admin.addr;
        let task = tokio::spawn(async move {
            tracing::info!(%admin_addr, api_addr = ?api_addr, "{what} started");
            let served = intake.await;
            let stopped = stopping.run().await;
            tracing::info!("{what} stopped");
            served.and(stopped)
        });
        Self::new(admin_addr, api_addr, task)
    }

    /// Waits until the service has drained and stopped.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await?
    }
}

/// The whole life of a service process, shared by the three `main`s: read the configuration
/// (exit 2 naming the bad variable), install telemetry, run until SIGTERM/SIGINT, flush
/// telemetry, exit 0 on a clean stop and 1 on an error.
pub async fn main<C, Run, Fut>(
    name: &'static str,
    load: impl FnOnce(&Source) -> Result<C, ConfigError>,
    telemetry: impl FnOnce(&C) -> &TelemetryConfig,
    run: Run,
) -> std::process::ExitCode
where
    Run: FnOnce(C, tokio_util::sync::CancellationToken) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    use std::process::ExitCode;

    let config = match load(&Source::from_env()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("{name}: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    // async-nats (ring) and reqwest (aws-lc-rs) both bring rustls; pick one provider for the
    // process or the first TLS connection panics.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let (subscriber, guard) = match sidechain_telemetry::build(name, telemetry(&config)) {
        Ok(built) => built,
        Err(err) => {
            eprintln!("{name}: telemetry error: {err}");
            return ExitCode::from(2);
        }
    };
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        eprintln!("{name}: a global tracing subscriber was already installed");
    }
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "starting");

    let shutdown = crate::shutdown::on_signal();
    let outcome = run(config, shutdown).await;
    let code = match &outcome {
        Ok(()) => {
            tracing::info!("stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "stopped with an error");
            ExitCode::FAILURE
        }
    };
    guard.shutdown();
    code
}

/// What every service connects to at start: NATS (with JetStream), Redis, a metrics registry
/// and readiness checks for all three (`nats`, `redis`, `events_stream`).
///
/// Nothing here waits for a server: NATS connects in the background, Redis on first use, and
/// the `EVENTS` stream is looked up by [`Foundation::wait_for_stream`] with retries, so a service
/// started before its dependencies serves health (not ready) and becomes ready when they appear.
#[derive(Debug)]
pub struct Foundation {
    /// NATS connection.
    pub nats: async_nats::Client,
    /// JetStream context on it.
    pub jetstream: async_nats::jetstream::Context,
    /// Redis connection (timed).
    pub redis: crate::redis::RedisConn,
    /// Redis latency metrics, for more connections of the same service.
    pub redis_metrics: crate::redis::RedisMetrics,
    /// Registry to add the service's metrics to before serving it.
    pub registry: prometheus_client::registry::Registry,
    /// Readiness checks; add the service's own with `with_check`.
    pub readiness: sidechain_telemetry::admin::Readiness,
    stream_ready: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Foundation {
    /// Connects (without waiting) as `service`.
    pub async fn connect(
        service: &str,
        config: &ServiceConfig,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<Self> {
        use anyhow::Context as _;

        let nats = crate::nats::connect(service, &config.nats).await?;
        let jetstream = crate::nats::jetstream(nats.clone(), &config.nats);
        let mut registry = sidechain_telemetry::metrics::new_registry();
        let redis_metrics = crate::redis::RedisMetrics::register(&mut registry);
        let redis = crate::redis::connect(&config.redis)
            .context("REDIS_URL")?
            .with_metrics(redis_metrics.clone());
        let stream_ready = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readiness = sidechain_telemetry::admin::Readiness::new(shutdown.clone())
            .with_check("nats", crate::nats::readiness_check(nats.clone()))
            .with_check("redis", crate::redis::readiness_check(redis.clone()))
            .with_flag("events_stream", stream_ready.clone(), "not set up yet");
        Ok(Self {
            nats,
            jetstream,
            redis,
            redis_metrics,
            registry,
            readiness,
            stream_ready,
        })
    }

    /// Waits until the `EVENTS` stream exists (provisioning creates it; services may not),
    /// retrying until NATS answers; readiness reports `events_stream` down until then. Returns
    /// `false` if shutdown came first.
    pub async fn wait_for_stream(
        jetstream: &async_nats::jetstream::Context,
        ready: &std::sync::atomic::AtomicBool,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> bool {
        let done = crate::retry::until_ok(
            "find the EVENTS stream (created by `sidechain-nats-admin provision`)",
            shutdown,
            || async {
                jetstream
                    .get_stream(sidechain_events::subjects::EVENTS_STREAM)
                    .await
                    .map(|_| ())
            },
        )
        .await
        .is_ok();
        if done {
            ready.store(true, std::sync::atomic::Ordering::Relaxed);
            tracing::info!("EVENTS stream ready");
        }
        done
    }

    /// The flag [`Foundation::wait_for_stream`] sets.
    pub fn stream_ready(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        self.stream_ready.clone()
    }
}

/// The intake of a service whose work all runs in its own tasks: it stops when shutdown begins.
pub async fn until_cancelled(shutdown: tokio_util::sync::CancellationToken) -> anyhow::Result<()> {
    shutdown.cancelled().await;
    Ok(())
}

/// The end of every service's life, once intake has stopped: drain each task tracker in
/// order (each within its cap), flush what NATS still buffers, and stop the admin server last
/// (health answers `draining` until then).
#[derive(Debug)]
pub struct Stopping {
    admin: AdminServer,
    nats: async_nats::Client,
    drains: Vec<(tokio_util::task::TaskTracker, std::time::Duration)>,
}

impl Stopping {
    /// Flushes `nats` and stops `admin`, after the drains added with [`Stopping::drain`].
    pub fn new(admin: AdminServer, nats: async_nats::Client) -> Self {
        Self {
            admin,
            nats,
            drains: Vec::new(),
        }
    }

    /// Drains `tracker` (at most `cap`) after the trackers added before it.
    pub fn drain(mut self, tracker: tokio_util::task::TaskTracker, cap: Duration) -> Self {
        self.drains.push((tracker, cap));
        self
    }

    async fn run(self) -> anyhow::Result<()> {
        for (tracker, cap) in &self.drains {
            crate::shutdown::drain(tracker, *cap).await;
        }
        if let Err(err) = self.nats.flush().await {
            tracing::debug!(error = %err, "NATS flush on shutdown failed");
        }
        self.admin.stop().await
    }
}

/// The admin server (metrics, health) of a service, stopped last.
#[derive(Debug)]
pub struct AdminServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The connection metrics of the service's listeners, registered with its metrics; other
    /// listeners (the edge's API) take theirs from here.
    pub connection_metrics: ConnectionMetrics,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl AdminServer {
    /// Binds the configured metrics address and serves `readiness` (and `registry`, unless
    /// `METRICS_ENABLED=false`) until [`AdminServer::stop`].
    pub async fn start(
        config: &ServiceConfig,
        mut registry: prometheus_client::registry::Registry,
        readiness: sidechain_telemetry::admin::Readiness,
    ) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let connection_metrics = ConnectionMetrics::register(&mut registry);
        let addr = config.metrics_addr();
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding METRICS_PORT {addr}"))?;
        let addr = listener.local_addr()?;
        let stop = tokio_util::sync::CancellationToken::new();
        let router = if config.metrics_enabled {
            sidechain_telemetry::admin::router(std::sync::Arc::new(registry), readiness)
        } else {
            sidechain_telemetry::admin::health_routes(readiness)
        };
        let task = tokio::spawn(crate::http_server::serve(
            listener,
            router,
            config.admin_connection_limits(),
            connection_metrics.listener("admin"),
            stop.clone(),
        ));
        Ok(Self {
            addr,
            connection_metrics,
            stop,
            task,
        })
    }

    /// Stops serving.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await?;
        Ok(())
    }
}
