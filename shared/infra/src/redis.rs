//! Redis: a lazily connecting, self-reconnecting handle.
//!
//! The handle is created without a server (a service may start before Redis). Each command on a
//! broken connection fails within the connect timeout and triggers a reconnect, so callers see
//! fast errors during an outage (and can fall back) and recover on their own afterwards.

use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, Pipeline, RedisFuture, Value};
use serde::Deserialize;
use sidechain_config::{ConfigError, Source};
use tracing::Instrument as _;

/// A cloneable Redis connection shared by all tasks (commands are pipelined on one socket),
/// timing every command in `sidechain_redis_command_duration_seconds` once given metrics.
#[derive(Clone)]
pub struct RedisConn {
    inner: ConnectionManager,
    metrics: Option<RedisMetrics>,
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConn").finish_non_exhaustive()
    }
}

impl RedisConn {
    /// The same connection, recording command latencies in `metrics`.
    pub fn with_metrics(mut self, metrics: RedisMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn record(&self, operation: &'static str, started: Instant, ok: bool) {
        if let Some(metrics) = &self.metrics {
            metrics
                .durations
                .get_or_create(&CommandLabels {
                    operation,
                    outcome: if ok { "ok" } else { "error" },
                })
                .observe(started.elapsed().as_secs_f64());
        }
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let operation = operation(cmd);
        let span = client_span(operation);
        Box::pin(
            async move {
                let started = Instant::now();
                let result = self.inner.req_packed_command(cmd).await;
                self.record(operation, started, result.is_ok());
                result
            }
            .instrument(span),
        )
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(
            async move {
                let started = Instant::now();
                let result = self
                    .inner
                    .req_packed_commands(pipeline, offset, count)
                    .await;
                self.record("pipeline", started, result.is_ok());
                result
            }
            .instrument(client_span("pipeline")),
        )
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    operation: &'static str,
    outcome: &'static str,
}

/// Latency of Redis commands by operation (the command name; pipelines and transactions are
/// `pipeline`) and outcome.
#[derive(Debug, Clone)]
pub struct RedisMetrics {
    durations: Family<CommandLabels, Histogram>,
}

impl RedisMetrics {
    /// Registers `sidechain_redis_command_duration_seconds`.
    pub fn register(registry: &mut Registry) -> Self {
        let durations = Family::<CommandLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(sidechain_telemetry::metrics::latency_buckets())
        });
        registry.register_with_unit(
            "redis_command_duration",
            "Time of Redis commands as seen by the service, by operation and outcome",
            Unit::Seconds,
            durations.clone(),
        );
        Self { durations }
    }
}

/// A client span per command, named after the operation (OpenTelemetry database
/// conventions); it joins the trace of the request or message being handled.
fn client_span(operation: &'static str) -> tracing::Span {
    tracing::info_span!(
        "redis",
        otel.name = operation,
        otel.kind = "client",
        db.system.name = "redis",
        db.operation.name = operation,
    )
}

/// The command name as a label from a closed set (unknown commands are `other`).
fn operation(cmd: &Cmd) -> &'static str {
    let Some(redis::Arg::Simple(name)) = cmd.args_iter().next() else {
        return "other";
    };
    const KNOWN: [&str; 36] = [
        "get",
        "set",
        "del",
        "exists",
        "expire",
        "pexpire",
        "pttl",
        "incr",
        "hget",
        "hmget",
        "hset",
        "hsetnx",
        "hgetall",
        "hincrby",
        "sadd",
        "srem",
        "smembers",
        "sinter",
        "scard",
        "zadd",
        "zrem",
        "zrange",
        "zrevrange",
        "zrevrangebyscore",
        "zremrangebyrank",
        "rpush",
        "lmove",
        "lrem",
        "llen",
        "lindex",
        "eval",
        "evalsha",
        "script",
        "ping",
        "flushall",
        "multi",
    ];
    KNOWN
        .iter()
        .find(|known| known.as_bytes().eq_ignore_ascii_case(name))
        .copied()
        .unwrap_or("other")
}

/// Connection settings. Field `foo` is variable `FOO`.
#[derive(Debug, Clone, Deserialize)]
pub struct RedisConfig {
    /// `REDIS_URL`: `redis://[:password@]host:port[/db]`, or `rediss://` for TLS. When unset,
    /// `REDIS_HOST`, `REDIS_PORT` and `REDIS_PASSWORD` (the design brief's names) compose it.
    #[serde(default = "default_url")]
    pub redis_url: String,
    /// `REDIS_RESPONSE_TIMEOUT`: a command that takes longer fails.
    #[serde(default = "default_timeout", with = "sidechain_config::duration")]
    pub redis_response_timeout: Duration,
    /// `REDIS_CONNECT_TIMEOUT`: one connection attempt that takes longer fails.
    #[serde(default = "default_timeout", with = "sidechain_config::duration")]
    pub redis_connect_timeout: Duration,
    /// `REDIS_TLS_CA_FILE`: the root certificate (PEM) that signed the server's certificate,
    /// for `rediss://` to a server with a private CA (an in-cluster CA); without it the
    /// public web roots are trusted. Only with a `rediss://` URL.
    #[serde(default)]
    pub redis_tls_ca_file: Option<std::path::PathBuf>,
}

fn default_url() -> String {
    "redis://127.0.0.1:6379".to_owned()
}

fn default_timeout() -> Duration {
    Duration::from_secs(1)
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            redis_url: default_url(),
            redis_response_timeout: default_timeout(),
            redis_connect_timeout: default_timeout(),
            redis_tls_ca_file: None,
        }
    }
}

/// The design brief's alternative to `REDIS_URL`: host, port and password separately.
#[derive(Deserialize)]
struct RedisParts {
    #[serde(default)]
    redis_host: Option<String>,
    #[serde(default)]
    redis_port: Option<u16>,
    #[serde(default)]
    redis_password: Option<String>,
}

const PART_VARS: [&str; 3] = ["REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD"];

impl RedisParts {
    /// `redis://[:password@]host:port` from the parts (host `127.0.0.1`, port 6379 by default).
    fn url(self) -> Result<String, ConfigError> {
        let host = self.redis_host.unwrap_or_else(|| "127.0.0.1".to_owned());
        // An IPv6 address goes in brackets in a URL.
        let bracketed = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let port = self.redis_port.unwrap_or(6379);
        let mut url = url::Url::parse(&format!("redis://{bracketed}:{port}"))
            .ok()
            .filter(|url| url.host().is_some())
            .ok_or_else(|| {
                ConfigError::invalid(
                    "REDIS_HOST",
                    format!("'{host}' is not a host name or address"),
                )
            })?;
        if let Some(password) = self.redis_password.filter(|p| !p.is_empty()) {
            // Percent-encodes the password; the Redis client decodes it.
            url.set_password(Some(&password))
                .map_err(|()| ConfigError::invalid("REDIS_PASSWORD", "cannot be used in a URL"))?;
        }
        Ok(url.into())
    }
}

impl RedisConfig {
    /// Reads and checks the settings (the URL must parse). `REDIS_HOST`/`REDIS_PORT`/
    /// `REDIS_PASSWORD` compose the URL when `REDIS_URL` is unset; both at once are refused, so
    /// neither is silently ignored.
    pub fn from_source(source: &Source) -> Result<Self, ConfigError> {
        let mut config: Self = sidechain_config::load(source)?;
        if let Some(part) = PART_VARS.into_iter().find(|var| source.get(var).is_some()) {
            if source.get("REDIS_URL").is_some() {
                return Err(ConfigError::invalid(
                    part,
                    "REDIS_URL is set too; set either REDIS_URL or REDIS_HOST/REDIS_PORT/REDIS_PASSWORD, not both",
                ));
            }
            config.redis_url = sidechain_config::load::<RedisParts>(source)?.url()?;
        }
        redis::Client::open(config.redis_url.as_str()).map_err(|e| {
            // The URL may hold a password: describe the problem, never echo the value.
            ConfigError::invalid(
                "REDIS_URL",
                format!("not a usable Redis URL ({})", e.kind_description()),
            )
        })?;
        if let Some(ca) = &config.redis_tls_ca_file {
            if !config.redis_url.starts_with("rediss://") {
                return Err(ConfigError::invalid(
                    "REDIS_TLS_CA_FILE",
                    "set, but REDIS_URL is not a rediss:// (TLS) URL",
                ));
            }
            client(&config).map_err(|e| {
                ConfigError::invalid(
                    "REDIS_TLS_CA_FILE",
                    format!("{}: {}", ca.display(), e.kind_description()),
                )
            })?;
        }
        Ok(config)
    }
}

/// The client for `config`: TLS with the private root certificate when one is configured.
fn client(config: &RedisConfig) -> redis::RedisResult<redis::Client> {
    let Some(ca) = &config.redis_tls_ca_file else {
        return redis::Client::open(config.redis_url.as_str());
    };
    let root_cert = std::fs::read(ca).map_err(|err| {
        redis::RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "cannot read the root certificate",
            err.to_string(),
        ))
    })?;
    redis::Client::build_with_tls(
        config.redis_url.as_str(),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(root_cert),
        },
    )
}

trait KindDescription {
    fn kind_description(&self) -> String;
}

impl KindDescription for redis::RedisError {
    fn kind_description(&self) -> String {
        format!("{:?}", self.kind()).to_lowercase()
    }
}

/// A handle that connects on first use and reconnects after failures (without metrics; see
/// [`RedisConn::with_metrics`]).
pub fn connect(config: &RedisConfig) -> redis::RedisResult<RedisConn> {
    let client = client(config)?;
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.redis_connect_timeout))
        .set_response_timeout(Some(config.redis_response_timeout))
        // Few, short retries per reconnect: during an outage commands should fail fast (the
        // next command tries again) rather than queue behind a long backoff.
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500));
    Ok(RedisConn {
        inner: ConnectionManager::new_lazy_with_config(client, manager_config)?,
        metrics: None,
    })
}

/// A readiness check: `PING` answered.
pub fn readiness_check(
    conn: RedisConn,
) -> impl Fn() -> futures::future::BoxFuture<'static, Result<(), String>> + Send + Sync + 'static {
    move || {
        let mut conn = conn.clone();
        Box::pin(async move {
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map(|_| ())
                .map_err(|e| format!("{:?}", e.kind()).to_lowercase())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_url_is_refused_without_echoing_it() {
        let source = Source::default().with("REDIS_URL", "postgres://:hunter2@db");
        let err = RedisConfig::from_source(&source).expect_err("not redis");
        assert!(matches!(&err, ConfigError::Invalid { var, .. } if var == "REDIS_URL"));
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn operations_are_a_closed_set() {
        assert_eq!(operation(&redis::cmd("HMGET")), "hmget");
        assert_eq!(operation(redis::cmd("evalsha").arg("x")), "evalsha");
        assert_eq!(operation(&redis::cmd("DEBUG")), "other");
    }

    #[test]
    fn host_port_and_password_compose_the_url() {
        let source = Source::from_pairs([
            ("REDIS_HOST", "redis.internal"),
            ("REDIS_PORT", "6380"),
            ("REDIS_PASSWORD", "p@ss:w/rd"),
        ]);
        let config = RedisConfig::from_source(&source).expect("parts");
        assert_eq!(
            config.redis_url,
            "redis://:p%40ss%3Aw%2Frd@redis.internal:6380"
        );
        let info = redis::IntoConnectionInfo::into_connection_info(config.redis_url.as_str())
            .expect("the client reads it");
        assert_eq!(info.redis_settings().password(), Some("p@ss:w/rd"));

        let config = RedisConfig::from_source(&Source::default().with("REDIS_PORT", "7000"))
            .expect("port alone");
        assert_eq!(config.redis_url, "redis://127.0.0.1:7000");
        let config =
            RedisConfig::from_source(&Source::default().with("REDIS_HOST", "::1")).expect("IPv6");
        assert_eq!(config.redis_url, "redis://[::1]:6379");
    }

    #[test]
    fn parts_and_a_url_together_are_refused() {
        let source = Source::from_pairs([("REDIS_URL", "redis://a:6379"), ("REDIS_PORT", "6380")]);
        let err = RedisConfig::from_source(&source).expect_err("both");
        assert!(
            matches!(&err, ConfigError::Invalid { var, reason } if var == "REDIS_PORT" && reason.contains("REDIS_URL")),
            "{err}"
        );
    }

    #[test]
    fn bad_parts_are_named() {
        for (var, value) in [("REDIS_PORT", "six"), ("REDIS_HOST", "bad host/")] {
            let err = RedisConfig::from_source(&Source::default().with(var, value)).expect_err(var);
            assert_eq!(err.var(), var, "{err}");
        }
    }

    #[test]
    fn tls_urls_are_accepted() {
        let source = Source::default().with("REDIS_URL", "rediss://:secret@redis.internal:6380/0");
        assert!(RedisConfig::from_source(&source).is_ok());
    }
}
