//! Gorse settings. Field `foo` is variable `FOO`.

use std::time::Duration;

use reqwest::Url;
use serde::{Deserialize, Deserializer};
use sidechain_config::{ConfigError, Source};

/// How to reach Gorse and how hard to try.
#[derive(Clone, Deserialize)]
pub struct GorseConfig {
    /// `GORSE_URL`: base URL of the Gorse server (REST on 8088 in gorse-in-one). Parsed when
    /// the configuration is read, so a bad value stops the service at start.
    #[serde(default = "default_url", deserialize_with = "http_url")]
    pub gorse_url: Url,
    /// `GORSE_API_KEY`: sent as `X-API-Key` (Gorse's `server.api_key`).
    #[serde(default)]
    pub gorse_api_key: Option<String>,
    /// `GORSE_REQUEST_TIMEOUT`: one attempt of a write.
    #[serde(
        default = "default_request_timeout",
        with = "sidechain_config::duration"
    )]
    pub gorse_request_timeout: Duration,
    /// `GORSE_READ_TIMEOUT`: a recommendation read (no retries; callers fall back).
    #[serde(default = "default_read_timeout", with = "sidechain_config::duration")]
    pub gorse_read_timeout: Duration,
    /// `GORSE_CONNECT_TIMEOUT`.
    #[serde(
        default = "default_connect_timeout",
        with = "sidechain_config::duration"
    )]
    pub gorse_connect_timeout: Duration,
    /// `GORSE_RETRY_MAX_ATTEMPTS`: attempts of a write in all, the first one included (so the
    /// default 4 is the first try and retries after about 1 s, 2 s and 4 s).
    #[serde(default = "default_max_attempts")]
    pub gorse_retry_max_attempts: u32,
    /// `GORSE_RETRY_BASE_DELAY`: first retry waits about this long; each next one doubles.
    #[serde(default = "default_retry_base", with = "sidechain_config::duration")]
    pub gorse_retry_base_delay: Duration,
    /// `GORSE_BREAKER_FAILURES`: consecutive failed calls that open the circuit.
    #[serde(default = "default_breaker_failures")]
    pub gorse_breaker_failures: u32,
    /// `GORSE_BREAKER_COOLDOWN`: how long an open circuit fails fast before one probe.
    #[serde(
        default = "default_breaker_cooldown",
        with = "sidechain_config::duration"
    )]
    pub gorse_breaker_cooldown: Duration,
}

impl std::fmt::Debug for GorseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GorseConfig")
            .field("gorse_url", &self.gorse_url)
            .field(
                "gorse_api_key",
                &self.gorse_api_key.as_ref().map(|_| "[redacted]"),
            )
            .field("gorse_request_timeout", &self.gorse_request_timeout)
            .field("gorse_retry_max_attempts", &self.gorse_retry_max_attempts)
            .field("gorse_retry_base_delay", &self.gorse_retry_base_delay)
            .field("gorse_breaker_failures", &self.gorse_breaker_failures)
            .field("gorse_breaker_cooldown", &self.gorse_breaker_cooldown)
            .finish_non_exhaustive()
    }
}

fn default_url() -> Url {
    Url::parse("http://127.0.0.1:8088").unwrap_or_else(|_| unreachable!("a valid literal"))
}

/// Reads `GORSE_URL`: an absolute `http` or `https` URL with a host.
fn http_url<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Url, D::Error> {
    let text = String::deserialize(deserializer)?;
    Url::parse(&text)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
        .ok_or_else(|| serde::de::Error::custom(format!("'{text}' is not an http(s) URL")))
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_read_timeout() -> Duration {
    Duration::from_millis(300)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_max_attempts() -> u32 {
    4
}
fn default_retry_base() -> Duration {
    Duration::from_secs(1)
}
fn default_breaker_failures() -> u32 {
    5
}
fn default_breaker_cooldown() -> Duration {
    Duration::from_secs(30)
}

impl GorseConfig {
    /// Reads and checks the settings.
    pub fn from_source(source: &Source) -> Result<Self, ConfigError> {
        let mut config: Self = sidechain_config::load(source)?;
        config.gorse_api_key = config.gorse_api_key.filter(|k| !k.is_empty());
        if config.gorse_breaker_failures == 0 {
            return Err(ConfigError::invalid(
                "GORSE_BREAKER_FAILURES",
                "must be at least 1",
            ));
        }
        if !(1..=11).contains(&config.gorse_retry_max_attempts) {
            return Err(ConfigError::invalid(
                "GORSE_RETRY_MAX_ATTEMPTS",
                "must be 1 (no retries) to 11 (the first attempt and 10 retries)",
            ));
        }
        Ok(config)
    }
}

impl Default for GorseConfig {
    fn default() -> Self {
        Self {
            gorse_url: default_url(),
            gorse_api_key: None,
            gorse_request_timeout: default_request_timeout(),
            gorse_read_timeout: default_read_timeout(),
            gorse_connect_timeout: default_connect_timeout(),
            gorse_retry_max_attempts: default_max_attempts(),
            gorse_retry_base_delay: default_retry_base(),
            gorse_breaker_failures: default_breaker_failures(),
            gorse_breaker_cooldown: default_breaker_cooldown(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bad_values() {
        let config = GorseConfig::from_source(&Source::default()).expect("defaults");
        assert_eq!(config.gorse_url.as_str(), "http://127.0.0.1:8088/");
        assert_eq!(config.gorse_retry_max_attempts, 4);
        let err =
            GorseConfig::from_source(&Source::default().with("GORSE_RETRY_MAX_ATTEMPTS", "0"))
                .expect_err("no attempt at all");
        assert!(
            matches!(&err, ConfigError::Invalid { var, .. } if var == "GORSE_RETRY_MAX_ATTEMPTS")
        );
    }

    #[test]
    fn a_bad_gorse_url_is_refused_naming_the_variable() {
        for bad in ["gorse:8088", "not a url", "ftp://gorse:8088", "http://", ""] {
            let err =
                GorseConfig::from_source(&Source::default().with("GORSE_URL", bad)).expect_err(bad);
            assert!(
                matches!(&err, ConfigError::Invalid { var, reason } if var == "GORSE_URL" && reason.contains(bad)),
                "{bad}: {err}"
            );
        }
        let config = GorseConfig::from_source(
            &Source::default().with("GORSE_URL", "https://gorse.internal:8088/base"),
        )
        .expect("a good URL");
        assert_eq!(config.gorse_url.host_str(), Some("gorse.internal"));
    }

    #[test]
    fn the_api_key_is_never_printed() {
        let config = GorseConfig::from_source(&Source::default().with("GORSE_API_KEY", "s3cr3t"))
            .expect("loads");
        assert!(!format!("{config:?}").contains("s3cr3t"));
    }
}
