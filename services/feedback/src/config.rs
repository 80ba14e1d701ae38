//! The feedback service's settings. Everything comes from environment variables (see
//! `.env.example`).

use std::time::Duration;

use serde::Deserialize;
use sidechain_config::{ConfigError, Source};
use sidechain_gorse::GorseConfig;
use sidechain_infra::service::ServiceConfig;

/// Default metrics/health port of the feedback service.
pub const DEFAULT_METRICS_PORT: u16 = 9091;

/// Everything the feedback service is configured with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings shared by all services.
    pub service: ServiceConfig,
    /// How to reach Gorse.
    pub gorse: GorseConfig,
    /// Batching, dead-letter and consumer settings.
    pub pipeline: PipelineConfig,
    /// Resolving placeholder items from the read models.
    pub reconcile: crate::reconcile::ReconcileConfig,
}

/// How events flow to Gorse. Field `foo` is variable `FOO`.
#[derive(Debug, Clone, Deserialize)]
pub struct PipelineConfig {
    /// `GORSE_BATCH_SIZE`: a batch is sent when it holds this many events…
    #[serde(default = "default_batch_size")]
    pub gorse_batch_size: usize,
    /// `GORSE_BATCH_TIMEOUT`: …or this long after its first event, whichever comes first.
    #[serde(default = "default_batch_timeout", with = "sidechain_config::duration")]
    pub gorse_batch_timeout: Duration,
    /// `GORSE_DLQ_FLUSH_INTERVAL`: how often the dead-letter list is retried (also as soon as
    /// Gorse turns healthy).
    #[serde(
        default = "default_flush_interval",
        with = "sidechain_config::duration"
    )]
    pub gorse_dlq_flush_interval: Duration,
    /// `GORSE_HEALTH_INTERVAL`: how often Gorse's readiness is checked and published.
    #[serde(
        default = "default_health_interval",
        with = "sidechain_config::duration"
    )]
    pub gorse_health_interval: Duration,
    /// `FEEDBACK_MAX_ACK_PENDING`: events delivered to this service's instances and not yet
    /// acknowledged (the back-pressure bound).
    #[serde(default = "default_max_ack_pending")]
    pub feedback_max_ack_pending: i64,
    /// `FEEDBACK_ACK_WAIT`: JetStream redelivers an event not acknowledged within this time;
    /// batches being sent are kept alive with progress acknowledgements.
    #[serde(default = "default_ack_wait", with = "sidechain_config::duration")]
    pub feedback_ack_wait: Duration,
    /// `FEEDBACK_MAX_DELIVER`: deliveries of one event before it is given up (only when Gorse
    /// and Redis both stay down that long; the event stays in the stream).
    #[serde(default = "default_max_deliver")]
    pub feedback_max_deliver: i64,
}

fn default_batch_size() -> usize {
    100
}
fn default_batch_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_flush_interval() -> Duration {
    Duration::from_secs(300)
}
fn default_health_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_max_ack_pending() -> i64 {
    1000
}
fn default_ack_wait() -> Duration {
    Duration::from_secs(30)
}
fn default_max_deliver() -> i64 {
    200
}

impl Config {
    /// Reads and checks the settings.
    pub fn from_source(source: &Source) -> Result<Self, ConfigError> {
        let pipeline: PipelineConfig = sidechain_config::load(source)?;
        if !(1..=10_000).contains(&pipeline.gorse_batch_size) {
            return Err(ConfigError::invalid(
                "GORSE_BATCH_SIZE",
                "must be 1 to 10000",
            ));
        }
        if pipeline.gorse_batch_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "GORSE_BATCH_TIMEOUT",
                "must be greater than 0",
            ));
        }
        if pipeline.feedback_max_ack_pending < pipeline.gorse_batch_size as i64 {
            return Err(ConfigError::invalid(
                "FEEDBACK_MAX_ACK_PENDING",
                "must be at least GORSE_BATCH_SIZE, or batches can never fill",
            ));
        }
        if pipeline.feedback_ack_wait < Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                "FEEDBACK_ACK_WAIT",
                "must be at least 1s",
            ));
        }
        if pipeline.gorse_batch_timeout >= pipeline.feedback_ack_wait {
            return Err(ConfigError::invalid(
                "GORSE_BATCH_TIMEOUT",
                "must be shorter than FEEDBACK_ACK_WAIT, or events waiting in a batch are redelivered",
            ));
        }
        if pipeline.feedback_max_deliver < 2 {
            return Err(ConfigError::invalid(
                "FEEDBACK_MAX_DELIVER",
                "must be at least 2",
            ));
        }
        for (var, value) in [
            (
                "GORSE_DLQ_FLUSH_INTERVAL",
                pipeline.gorse_dlq_flush_interval,
            ),
            ("GORSE_HEALTH_INTERVAL", pipeline.gorse_health_interval),
        ] {
            if value.is_zero() {
                return Err(ConfigError::invalid(var, "must be greater than 0"));
            }
        }
        Ok(Self {
            service: ServiceConfig::from_source(source, DEFAULT_METRICS_PORT)?,
            gorse: GorseConfig::from_source(source)?,
            pipeline,
            reconcile: crate::reconcile::ReconcileConfig::from_source(source)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_brief() {
        let config = Config::from_source(&Source::default()).expect("defaults");
        assert_eq!(config.pipeline.gorse_batch_size, 100);
        assert_eq!(config.pipeline.gorse_batch_timeout, Duration::from_secs(5));
        assert_eq!(
            config.pipeline.gorse_dlq_flush_interval,
            Duration::from_secs(300)
        );
        assert_eq!(
            config.pipeline.gorse_health_interval,
            Duration::from_secs(30)
        );
        assert_eq!(config.service.metrics_port, 9091);
    }

    #[test]
    fn inconsistent_values_are_named() {
        for (var, value) in [
            ("GORSE_BATCH_SIZE", "0"),
            ("GORSE_BATCH_TIMEOUT", "later"),
            ("FEEDBACK_MAX_ACK_PENDING", "10"),
            ("GORSE_HEALTH_INTERVAL", "0s"),
        ] {
            let err = Config::from_source(&Source::default().with(var, value)).expect_err(var);
            assert!(
                matches!(&err, ConfigError::Invalid { var: v, .. } if v == var),
                "{var}: {err}"
            );
        }
    }
}
