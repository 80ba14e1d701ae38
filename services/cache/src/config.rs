//! The cache service's settings. Everything comes from environment variables (see `.env.example`).

use sidechain_config::{ConfigError, Source};
use sidechain_infra::service::ServiceConfig;

/// Default metrics/health port of the cache service.
pub const DEFAULT_METRICS_PORT: u16 = 9092;

/// Everything the cache service is configured with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings shared by all services.
    pub service: ServiceConfig,
}

impl Config {
    /// Reads and checks the settings.
    pub fn from_source(source: &Source) -> Result<Self, ConfigError> {
        Ok(Self {
            service: ServiceConfig::from_source(source, DEFAULT_METRICS_PORT)?,
        })
    }
}
