//! Telemetry settings, read from the environment by [`TelemetryConfig::from_source`].

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use sidechain_config::{ConfigError, Source};

/// Logging and tracing settings. Field `foo` is variable `FOO`.
#[derive(Debug, Clone, Deserialize)]
pub struct TelemetryConfig {
    /// `LOG_LEVEL`: `debug|info|warn|error`, or a full filter such as `info,sidechain_edge=debug`.
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// `LOG_FILE`: also write logs to this file, rotated by size.
    #[serde(default)]
    pub log_file: Option<PathBuf>,
    /// `LOG_FILE_MAX_BYTES`: rotate when the file passes this size (a line is never split).
    #[serde(default = "default_max_bytes")]
    pub log_file_max_bytes: u64,
    /// `LOG_FILE_MAX_FILES`: rotated files kept besides the live one.
    #[serde(default = "default_max_files")]
    pub log_file_max_files: usize,
    /// `LOG_FILE_MAX_AGE`: rotated files older than this are removed at the next rotation.
    #[serde(default = "default_max_age", with = "sidechain_config::duration")]
    pub log_file_max_age: Duration,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: OTLP/gRPC collector, e.g. `http://jaeger:4317`.
    #[serde(default)]
    pub otel_exporter_otlp_endpoint: Option<String>,
    /// `OTEL_SERVICE_NAME`: the service name in traces; defaults to the service's own name.
    #[serde(default)]
    pub otel_service_name: Option<String>,
    /// `OTEL_TRACES_SAMPLER_ARG`: fraction of traces sampled (0.0–1.0). The edge decides for
    /// every client request, even one that sends a `traceparent` (it keeps the trace id, not the
    /// caller's sampling flag); services behind it follow the edge's decision.
    #[serde(default = "default_sample_ratio")]
    pub otel_traces_sampler_arg: f64,
}

fn default_log_level() -> String {
    "info".to_owned()
}

fn default_max_bytes() -> u64 {
    100 * 1024 * 1024
}

fn default_max_files() -> usize {
    5
}

fn default_max_age() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

fn default_sample_ratio() -> f64 {
    1.0
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_level: default_log_level(),
            log_file: None,
            log_file_max_bytes: default_max_bytes(),
            log_file_max_files: default_max_files(),
            log_file_max_age: default_max_age(),
            otel_exporter_otlp_endpoint: None,
            otel_service_name: None,
            otel_traces_sampler_arg: default_sample_ratio(),
        }
    }
}

impl TelemetryConfig {
    /// Reads and checks the settings.
    pub fn from_source(source: &Source) -> Result<Self, ConfigError> {
        let mut config: Self = sidechain_config::load(source)?;
        // An empty variable means "not set": compose files often pass `VAR=` through.
        config.log_file = config.log_file.filter(|p| !p.as_os_str().is_empty());
        config.otel_exporter_otlp_endpoint = config
            .otel_exporter_otlp_endpoint
            .filter(|e| !e.trim().is_empty());
        config.otel_service_name = config.otel_service_name.filter(|n| !n.trim().is_empty());
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        crate::logging::parse_filter(&self.log_level)?;
        if self.log_file_max_bytes == 0 {
            return Err(ConfigError::invalid(
                "LOG_FILE_MAX_BYTES",
                "must be greater than 0",
            ));
        }
        if self.log_file_max_files == 0 {
            return Err(ConfigError::invalid(
                "LOG_FILE_MAX_FILES",
                "must be at least 1",
            ));
        }
        if !(0.0..=1.0).contains(&self.otel_traces_sampler_arg) {
            return Err(ConfigError::invalid(
                "OTEL_TRACES_SAMPLER_ARG",
                "must be between 0.0 and 1.0",
            ));
        }
        if let Some(endpoint) = &self.otel_exporter_otlp_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(ConfigError::invalid(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("'{endpoint}' must start with http:// or https://"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_ones() {
        let config = TelemetryConfig::from_source(&Source::default()).expect("defaults load");
        assert_eq!(config.log_level, "info");
        assert_eq!(config.log_file_max_bytes, 100 * 1024 * 1024);
        assert_eq!(config.log_file_max_files, 5);
        assert_eq!(config.log_file_max_age, Duration::from_secs(604_800));
        assert!(config.otel_exporter_otlp_endpoint.is_none());
    }

    #[test]
    fn a_bad_log_level_stops_start_up_naming_the_variable() {
        let source = Source::default().with("LOG_LEVEL", "verbose");
        let err = TelemetryConfig::from_source(&source).expect_err("bad level");
        assert!(
            matches!(&err, ConfigError::Invalid { var, .. } if var == "LOG_LEVEL"),
            "{err}"
        );
    }

    #[test]
    fn full_filters_are_accepted() {
        let source = Source::default().with("LOG_LEVEL", "warn,sidechain_edge=debug");
        assert!(TelemetryConfig::from_source(&source).is_ok());
    }

    #[test]
    fn empty_endpoint_means_no_export() {
        let source = Source::default().with("OTEL_EXPORTER_OTLP_ENDPOINT", "");
        let config = TelemetryConfig::from_source(&source).expect("loads");
        assert!(config.otel_exporter_otlp_endpoint.is_none());
    }

    #[test]
    fn out_of_range_sampling_is_rejected() {
        let source = Source::default().with("OTEL_TRACES_SAMPLER_ARG", "1.5");
        let err = TelemetryConfig::from_source(&source).expect_err("ratio > 1");
        assert!(
            matches!(&err, ConfigError::Invalid { var, .. } if var == "OTEL_TRACES_SAMPLER_ARG")
        );
    }
}
