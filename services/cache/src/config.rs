//! The cache service's settings. Everything comes from environment variables (see
//! `.env.example`).

use std::time::Duration;

use serde::Deserialize;
use sidechain_config::{ConfigError, Source};
use sidechain_gorse::GorseConfig;
use sidechain_infra::service::ServiceConfig;

/// Default metrics/health port of the cache service.
pub const DEFAULT_METRICS_PORT: u16 = 9092;

/// Everything the cache service is configured with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings shared by all services.
    pub service: ServiceConfig,
    /// Gorse, for recommendations (reads only).
    pub gorse: GorseConfig,
    /// Page caching.
    pub cache: CacheConfig,
    /// Read-model building.
    pub models: ModelConfig,
}

/// Page and session caching. Field `foo` is variable `FOO`.
#[derive(Debug, Clone, Deserialize)]
pub struct CacheConfig {
    /// `CACHE_TTL_TIMELINE`.
    #[serde(default = "thirty_seconds", with = "sidechain_config::duration")]
    pub cache_ttl_timeline: Duration,
    /// `CACHE_TTL_UNIFIED` (also the for-you feed).
    #[serde(default = "thirty_seconds", with = "sidechain_config::duration")]
    pub cache_ttl_unified: Duration,
    /// `CACHE_TTL_USER`.
    #[serde(default = "one_minute", with = "sidechain_config::duration")]
    pub cache_ttl_user: Duration,
    /// `CACHE_TTL_TRENDING`.
    #[serde(default = "five_minutes", with = "sidechain_config::duration")]
    pub cache_ttl_trending: Duration,
    /// `CACHE_MEMORY_MAX_TTL`: pages kept in process memory at most this long, bounding
    /// staleness if an invalidation broadcast is missed.
    #[serde(default = "one_minute", with = "sidechain_config::duration")]
    pub cache_memory_max_ttl: Duration,
    /// `CACHE_MEMORY_ENTRIES`: in-process entries per cache (pages, posts, counts, follow sets).
    #[serde(default = "default_memory_entries")]
    pub cache_memory_entries: u64,
    /// `CACHE_PAGES`: cache feed pages (default); `false` builds every page on every request
    /// (to measure what the cache saves, or to rule it out when debugging).
    #[serde(default = "enabled")]
    pub cache_pages: bool,
    /// `SESSION_CACHE_TTL`: `jwt_cache:*` entries live this long (at most the token's life);
    /// `0` disables the session cache.
    #[serde(default = "five_minutes", with = "sidechain_config::duration")]
    pub session_cache_ttl: Duration,
    /// `CACHE_MAX_CONCURRENT_REQUESTS`: requests served at once; more wait.
    #[serde(default = "default_concurrency")]
    pub cache_max_concurrent_requests: usize,
}

/// Read models. Field `foo` is variable `FOO`.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelConfig {
    /// `FANOUT_LIMIT`: authors with more followers are not fanned out on write; their posts
    /// are merged into timelines when read.
    #[serde(default = "default_fanout_limit")]
    pub fanout_limit: u64,
    /// `TIMELINE_CAP`: newest entries kept per timeline.
    #[serde(default = "default_timeline_cap")]
    pub timeline_cap: u64,
    /// `RECENT_CAP`: newest posts kept in the global recent list (trending candidates).
    #[serde(default = "default_recent_cap")]
    pub recent_cap: u64,
    /// `TRENDING_WINDOW`: posts older than this do not trend.
    #[serde(
        default = "default_trending_window",
        with = "sidechain_config::duration"
    )]
    pub trending_window: Duration,
    /// `TRENDING_CANDIDATES`: newest posts scored for trending.
    #[serde(default = "default_trending_candidates")]
    pub trending_candidates: usize,
    /// `APPLY_BATCH`: events applied to Redis per transaction.
    #[serde(default = "default_apply_batch")]
    pub apply_batch: usize,
    /// `CONSUMER_LAG_INTERVAL`: how often the consumer-lag gauge is refreshed.
    #[serde(default = "five_seconds", with = "sidechain_config::duration")]
    pub consumer_lag_interval: Duration,
}

fn enabled() -> bool {
    true
}
fn five_seconds() -> Duration {
    Duration::from_secs(5)
}
fn thirty_seconds() -> Duration {
    Duration::from_secs(30)
}
fn one_minute() -> Duration {
    Duration::from_secs(60)
}
fn five_minutes() -> Duration {
    Duration::from_secs(300)
}
fn default_memory_entries() -> u64 {
    100_000
}
fn default_concurrency() -> usize {
    512
}
fn default_fanout_limit() -> u64 {
    5_000
}
fn default_timeline_cap() -> u64 {
    1_000
}
fn default_recent_cap() -> u64 {
    10_000
}
fn default_trending_window() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}
fn default_trending_candidates() -> usize {
    1_000
}
fn default_apply_batch() -> usize {
    500
}

impl Config {
    /// Reads and checks the settings.
    pub fn from_source(source: &Source) -> Result<Self, ConfigError> {
        let cache: CacheConfig = sidechain_config::load(source)?;
        let models: ModelConfig = sidechain_config::load(source)?;
        for (var, ttl) in [
            ("CACHE_TTL_TIMELINE", cache.cache_ttl_timeline),
            ("CACHE_TTL_UNIFIED", cache.cache_ttl_unified),
            ("CACHE_TTL_USER", cache.cache_ttl_user),
            ("CACHE_TTL_TRENDING", cache.cache_ttl_trending),
            ("CACHE_MEMORY_MAX_TTL", cache.cache_memory_max_ttl),
        ] {
            if ttl < Duration::from_millis(100) {
                return Err(ConfigError::invalid(var, "must be at least 100ms"));
            }
        }
        if cache.session_cache_ttl > Duration::from_secs(300) {
            return Err(ConfigError::invalid(
                "SESSION_CACHE_TTL",
                "must be at most 5m",
            ));
        }
        if cache.cache_max_concurrent_requests == 0 {
            return Err(ConfigError::invalid(
                "CACHE_MAX_CONCURRENT_REQUESTS",
                "must be at least 1",
            ));
        }
        if models.consumer_lag_interval < Duration::from_millis(100) {
            return Err(ConfigError::invalid(
                "CONSUMER_LAG_INTERVAL",
                "must be at least 100ms",
            ));
        }
        if !(1..=10_000).contains(&models.apply_batch) {
            return Err(ConfigError::invalid("APPLY_BATCH", "must be 1 to 10000"));
        }
        if models.timeline_cap == 0 || models.recent_cap == 0 || models.trending_candidates == 0 {
            return Err(ConfigError::invalid(
                "TIMELINE_CAP",
                "TIMELINE_CAP, RECENT_CAP and TRENDING_CANDIDATES must be greater than 0",
            ));
        }
        Ok(Self {
            service: ServiceConfig::from_source(source, DEFAULT_METRICS_PORT)?,
            gorse: GorseConfig::from_source(source)?,
            cache,
            models,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_brief() {
        let config = Config::from_source(&Source::default()).expect("defaults");
        assert_eq!(config.cache.cache_ttl_timeline, Duration::from_secs(30));
        assert_eq!(config.cache.cache_ttl_unified, Duration::from_secs(30));
        assert_eq!(config.cache.cache_ttl_user, Duration::from_secs(60));
        assert_eq!(config.cache.cache_ttl_trending, Duration::from_secs(300));
        assert_eq!(config.cache.session_cache_ttl, Duration::from_secs(300));
        assert_eq!(config.service.metrics_port, 9092);
    }

    #[test]
    fn bad_values_are_named() {
        for (var, value) in [
            ("CACHE_TTL_USER", "0s"),
            ("APPLY_BATCH", "0"),
            ("CONSUMER_LAG_INTERVAL", "0s"),
            ("SESSION_CACHE_TTL", "1h"),
        ] {
            let err = Config::from_source(&Source::default().with(var, value)).expect_err(var);
            assert!(
                matches!(&err, ConfigError::Invalid { var: v, .. } if v == var),
                "{var}: {err}"
            );
        }
    }
}
