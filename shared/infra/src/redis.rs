//! Redis: a lazily connecting, self-reconnecting handle.
//!
//! The handle is created without a server (a service may start before Redis). Each command on a
//! broken connection fails within the connect timeout and triggers a reconnect, so callers see
//! fast errors during an outage (and can fall back) and recover on their own afterwards.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Deserialize;
use sidechain_config::{ConfigError, Source};

/// A cloneable Redis connection shared by all tasks (commands are pipelined on one socket).
pub type RedisConn = ConnectionManager;

/// Connection settings. Field `foo` is variable `FOO`.
#[derive(Debug, Clone, Deserialize)]
pub struct RedisConfig {
    /// `REDIS_URL`: `redis://[:password@]host:port[/db]`, or `rediss://` for TLS.
    #[serde(default = "default_url")]
    pub redis_url: String,
    /// `REDIS_RESPONSE_TIMEOUT`: a command that takes longer fails.
    #[serde(default = "default_timeout", with = "sidechain_config::duration")]
    pub redis_response_timeout: Duration,
    /// `REDIS_CONNECT_TIMEOUT`: one connection attempt that takes longer fails.
    #[serde(default = "default_timeout", with = "sidechain_config::duration")]
    pub redis_connect_timeout: Duration,
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
        }
    }
}

impl RedisConfig {
    /// Reads and checks the settings (the URL must parse).
    pub fn from_source(source: &Source) -> Result<Self, ConfigError> {
        let config: Self = sidechain_config::load(source)?;
        redis::Client::open(config.redis_url.as_str()).map_err(|e| {
            // The URL may hold a password: describe the problem, never echo the value.
            ConfigError::invalid(
                "REDIS_URL",
                format!("not a usable Redis URL ({})", e.kind_description()),
            )
        })?;
        Ok(config)
    }
}

trait KindDescription {
    fn kind_description(&self) -> String;
}

impl KindDescription for redis::RedisError {
    fn kind_description(&self) -> String {
        format!("{:?}", self.kind()).to_lowercase()
    }
}

/// A handle that connects on first use and reconnects after failures.
pub fn connect(config: &RedisConfig) -> redis::RedisResult<RedisConn> {
    let client = redis::Client::open(config.redis_url.as_str())?;
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.redis_connect_timeout))
        .set_response_timeout(Some(config.redis_response_timeout))
        // Few, short retries per reconnect: during an outage commands should fail fast (the
        // next command tries again) rather than queue behind a long backoff.
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client, manager_config)
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
    fn tls_urls_are_accepted() {
        let source = Source::default().with("REDIS_URL", "rediss://:secret@redis.internal:6380/0");
        assert!(RedisConfig::from_source(&source).is_ok());
    }
}
