//! The media service's settings, from environment variables (see `.env.example`).

use std::time::Duration;

use serde::Deserialize;
use sidechain_config::{ConfigError, Source};
use sidechain_infra::service::ServiceConfig;

/// Default metrics/health port of the media service.
pub const DEFAULT_METRICS_PORT: u16 = 9093;

/// Everything the media service is configured with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings shared by all services.
    pub service: ServiceConfig,
    /// How uploads are processed.
    pub jobs: JobConfig,
}

/// How uploads are processed.
#[derive(Debug, Clone, Deserialize)]
pub struct JobConfig {
    /// `MEDIA_CONCURRENCY`: files processed at once by one instance (default 2).
    #[serde(default = "default_concurrency")]
    pub media_concurrency: usize,
    /// `MEDIA_MAX_ATTEMPTS`: deliveries of one upload that failed for a passing reason (store
    /// or event store unavailable) before it is rejected as poison (default 5).
    #[serde(default = "default_attempts")]
    pub media_max_attempts: u64,
    /// `MEDIA_ACK_WAIT`: how long a delivery may take before JetStream redelivers it, e.g. to
    /// another instance after a crash (default 5 min).
    #[serde(default = "default_ack_wait", with = "sidechain_config::duration")]
    pub media_ack_wait: Duration,
    /// `MEDIA_RETRY_DELAY`: wait before a failed attempt is redelivered (default 5 s).
    #[serde(default = "default_retry_delay", with = "sidechain_config::duration")]
    pub media_retry_delay: Duration,
}

fn default_concurrency() -> usize {
    2
}
fn default_attempts() -> u64 {
    5
}
fn default_ack_wait() -> Duration {
    Duration::from_secs(300)
}
fn default_retry_delay() -> Duration {
    Duration::from_secs(5)
}

impl Config {
    /// Reads and checks the settings.
    pub fn from_source(source: &Source) -> Result<Self, ConfigError> {
        let jobs: JobConfig = sidechain_config::load(source)?;
        if !(1..=64).contains(&jobs.media_concurrency) {
            return Err(ConfigError::invalid("MEDIA_CONCURRENCY", "must be 1 to 64"));
        }
        if jobs.media_max_attempts == 0 {
            return Err(ConfigError::invalid(
                "MEDIA_MAX_ATTEMPTS",
                "must be at least 1",
            ));
        }
        if jobs.media_ack_wait < Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                "MEDIA_ACK_WAIT",
                "must be at least 1s",
            ));
        }
        Ok(Self {
            service: ServiceConfig::from_source(source, DEFAULT_METRICS_PORT)?,
            jobs,
        })
    }
}
