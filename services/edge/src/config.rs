//! The edge's settings. Everything comes from environment variables (see `.env.example`).

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use sidechain_config::{ConfigError, Source};
use sidechain_infra::http_server::ConnectionLimits;
use sidechain_infra::service::ServiceConfig;

use crate::auth::jwt::TokenSettings;
use crate::media_urls::MediaUrls;
use crate::rate_limit::{Backend, Quota, RateLimits};

/// Default metrics/health port of the edge.
pub const DEFAULT_METRICS_PORT: u16 = 9090;

/// Everything the edge is configured with.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Settings shared by all services (connections, telemetry, metrics port, drain cap).
    pub service: ServiceConfig,
    /// `PORT`: the client API (default 8787; 0 picks a free port).
    pub port: u16,
    /// `JWT_SECRET` (required, at least 32 bytes) and token lifetimes.
    pub auth: AuthConfig,
    /// `RATE_LIMIT_*`: requests allowed per client per route class.
    pub rate_limits: RateLimits,
    /// `TRUSTED_PROXIES`: comma-separated CIDRs whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// `MAX_BODY_BYTES`: larger request bodies get 413.
    pub max_body_bytes: usize,
    /// `REQUEST_TIMEOUT`: a request still running after this gets 503.
    pub request_timeout: Duration,
    /// `CACHE_REQUEST_TIMEOUT`: how long to wait for the cache service (feeds, sessions, lookups).
    pub cache_request_timeout: Duration,
    /// `CORS_ALLOWED_ORIGINS`: comma-separated origins (`https://app.example.com`) whose pages
    /// may call the API from a browser; none by default.
    pub cors_allowed_origins: Vec<String>,
    /// `MEDIA_URL_HOSTS`: comma-separated hosts (`cdn.sidechain.fm`, or `.sidechain.fm` for any
    /// subdomain) that a post's `audio_url`/`waveform_url` may point at; empty: any host. Always
    /// https.
    pub media_urls: MediaUrls,
    /// `HTTP_MAX_CONNECTIONS`, `HTTP_MAX_CONNECTIONS_PER_IP` and the service's HTTP timeouts:
    /// how many connections the API keeps open, and for how long.
    pub connections: ConnectionLimits,
    /// Audio uploads and serving.
    pub audio: AudioConfig,
}

/// Audio uploads and serving (`docs/architecture.md`, "Audio uploads").
#[derive(Debug, Clone)]
pub struct AudioConfig {
    /// `AUDIO_MAX_BYTES`: largest audio file accepted (default 50 MB); larger uploads get 413.
    pub max_bytes: u64,
    /// `PUBLIC_BASE_URL`: the API's public address as clients reach it (default
    /// `http://localhost:<PORT>`); the `audio_url` of an upload is built from it, never from
    /// the request's `Host` header, because that URL is stored and fetched by every listener.
    pub public_base_url: url::Url,
    /// `UPLOAD_TIMEOUT`: an upload still arriving after this gets 408 (default 10 min); it
    /// replaces `REQUEST_TIMEOUT` on the upload route.
    pub upload_timeout: Duration,
    /// `UPLOAD_IDLE_TIMEOUT`: an upload whose body sends nothing for this long gets 408
    /// (default 30 s) — a slow-loris upload holds a connection no longer than this per byte.
    pub upload_idle_timeout: Duration,
    /// `UPLOAD_SPOOL_DIR`: where an upload is spooled while it arrives (default: the system's
    /// temporary directory).
    pub spool_dir: Option<std::path::PathBuf>,
}

/// Token settings.
#[derive(Clone)]
pub struct AuthConfig {
    /// `JWT_SECRET` (signing), `JWT_PREVIOUS_SECRETS` (verify only), `JWT_ISSUER`,
    /// `JWT_AUDIENCE`, `JWT_TTL` (one token, default 24 h), `SESSION_MAX_LIFETIME` (a sign-in
    /// and its refreshes, default 30 days).
    pub tokens: TokenSettings,
    /// `SESSION_CACHE_TTL`: how long a verified session is trusted in-process (≤ 5 min).
    pub session_cache_ttl: Duration,
    /// `PASSWORD_HASH_CONCURRENCY`: argon2 hashes computed at once (each takes ~19 MiB, tens of ms).
    pub password_hash_concurrency: usize,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("tokens", &self.tokens)
            .field("session_cache_ttl", &self.session_cache_ttl)
            .field("password_hash_concurrency", &self.password_hash_concurrency)
            .finish()
    }
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default = "default_port")]
    port: u16,
    jwt_secret: String,
    #[serde(default)]
    jwt_previous_secrets: String,
    #[serde(default = "default_issuer")]
    jwt_issuer: String,
    #[serde(default = "default_audience")]
    jwt_audience: String,
    #[serde(default = "default_token_ttl", with = "sidechain_config::duration")]
    jwt_ttl: Duration,
    #[serde(default = "default_max_session", with = "sidechain_config::duration")]
    session_max_lifetime: Duration,
    #[serde(default = "default_session_ttl", with = "sidechain_config::duration")]
    session_cache_ttl: Duration,
    #[serde(default = "default_hash_concurrency")]
    password_hash_concurrency: usize,
    #[serde(default = "default_quota")]
    rate_limit_default: String,
    #[serde(default = "auth_quota")]
    rate_limit_auth: String,
    #[serde(default = "upload_quota")]
    rate_limit_upload: String,
    #[serde(default = "login_account_quota")]
    rate_limit_login_account: String,
    #[serde(default = "default_backend")]
    rate_limit_backend: String,
    #[serde(default)]
    trusted_proxies: String,
    #[serde(default = "default_max_body")]
    max_body_bytes: usize,
    #[serde(
        default = "default_request_timeout",
        with = "sidechain_config::duration"
    )]
    request_timeout: Duration,
    #[serde(default = "default_cache_timeout", with = "sidechain_config::duration")]
    cache_request_timeout: Duration,
    #[serde(default)]
    cors_allowed_origins: String,
    #[serde(default)]
    media_url_hosts: String,
    #[serde(default = "default_max_connections")]
    http_max_connections: usize,
    #[serde(default = "default_max_connections_per_ip")]
    http_max_connections_per_ip: usize,
    #[serde(default = "default_audio_max_bytes")]
    audio_max_bytes: u64,
    #[serde(default)]
    public_base_url: String,
    #[serde(
        default = "default_upload_timeout",
        with = "sidechain_config::duration"
    )]
    upload_timeout: Duration,
    #[serde(
        default = "default_upload_idle_timeout",
        with = "sidechain_config::duration"
    )]
    upload_idle_timeout: Duration,
    #[serde(default)]
    upload_spool_dir: String,
}

fn default_audio_max_bytes() -> u64 {
    50 * 1024 * 1024
}
fn default_upload_timeout() -> Duration {
    Duration::from_secs(600)
}
fn default_upload_idle_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_port() -> u16 {
    8787
}
fn default_issuer() -> String {
    "sidechain".to_owned()
}
fn default_audience() -> String {
    "sidechain-api".to_owned()
}
fn default_max_session() -> Duration {
    Duration::from_secs(30 * 86_400)
}
fn default_token_ttl() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_session_ttl() -> Duration {
    Duration::from_secs(300)
}
fn default_hash_concurrency() -> usize {
    4
}
fn default_quota() -> String {
    "100/1m".to_owned()
}
fn auth_quota() -> String {
    "10/1m".to_owned()
}
fn login_account_quota() -> String {
    "10/15m".to_owned()
}
fn upload_quota() -> String {
    "20/1m".to_owned()
}
fn default_backend() -> String {
    "redis".to_owned()
}
fn default_max_body() -> usize {
    64 * 1024
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_cache_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_max_connections() -> usize {
    10_000
}
fn default_max_connections_per_ip() -> usize {
    256
}

/// Minimum HMAC key length: 256 bits, the HS256 output size (RFC 7518 §3.2).
const MIN_SECRET_BYTES: usize = 32;

impl EdgeConfig {
    /// Reads and checks the settings.
    pub fn from_source(source: &Source) -> Result<Self, ConfigError> {
        let service = ServiceConfig::from_source(source, DEFAULT_METRICS_PORT)?;
        let raw: Raw = sidechain_config::load(source)?;
        if raw.jwt_secret.len() < MIN_SECRET_BYTES {
            return Err(ConfigError::invalid(
                "JWT_SECRET",
                format!(
                    "must be at least {MIN_SECRET_BYTES} bytes (generate one with `openssl rand -hex 32`)"
                ),
            ));
        }
        let previous_secrets: Vec<Vec<u8>> = raw
            .jwt_previous_secrets
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.as_bytes().to_vec())
            .collect();
        if previous_secrets.iter().any(|s| s.len() < MIN_SECRET_BYTES) {
            return Err(ConfigError::invalid(
                "JWT_PREVIOUS_SECRETS",
                format!("each secret must be at least {MIN_SECRET_BYTES} bytes"),
            ));
        }
        if raw.session_max_lifetime < raw.jwt_ttl {
            return Err(ConfigError::invalid(
                "SESSION_MAX_LIFETIME",
                "must be at least JWT_TTL",
            ));
        }
        if raw.jwt_issuer.trim().is_empty() || raw.jwt_audience.trim().is_empty() {
            let var = if raw.jwt_issuer.trim().is_empty() {
                "JWT_ISSUER"
            } else {
                "JWT_AUDIENCE"
            };
            return Err(ConfigError::invalid(var, "must not be empty"));
        }
        if raw.jwt_ttl < Duration::from_secs(60) {
            return Err(ConfigError::invalid("JWT_TTL", "must be at least 1m"));
        }
        if raw.session_cache_ttl > Duration::from_secs(300) {
            return Err(ConfigError::invalid(
                "SESSION_CACHE_TTL",
                "must be at most 5m, so revocations missed by a broadcast still take effect",
            ));
        }
        if raw.password_hash_concurrency == 0 {
            return Err(ConfigError::invalid(
                "PASSWORD_HASH_CONCURRENCY",
                "must be at least 1",
            ));
        }
        if raw.max_body_bytes < 1024 {
            return Err(ConfigError::invalid(
                "MAX_BODY_BYTES",
                "must be at least 1024",
            ));
        }
        if raw.http_max_connections == 0 {
            return Err(ConfigError::invalid(
                "HTTP_MAX_CONNECTIONS",
                "must be at least 1",
            ));
        }
        if raw.http_max_connections_per_ip == 0
            || raw.http_max_connections_per_ip > raw.http_max_connections
        {
            return Err(ConfigError::invalid(
                "HTTP_MAX_CONNECTIONS_PER_IP",
                format!(
                    "must be at least 1 and at most HTTP_MAX_CONNECTIONS ({})",
                    raw.http_max_connections
                ),
            ));
        }
        let connections = ConnectionLimits {
            timeouts: service.http_timeouts,
            max_connections: raw.http_max_connections,
            max_connections_per_ip: raw.http_max_connections_per_ip,
        };
        let rate_limits = RateLimits {
            default: Quota::parse(&raw.rate_limit_default)
                .map_err(|e| ConfigError::invalid("RATE_LIMIT_DEFAULT", e))?,
            auth: Quota::parse(&raw.rate_limit_auth)
                .map_err(|e| ConfigError::invalid("RATE_LIMIT_AUTH", e))?,
            upload: Quota::parse(&raw.rate_limit_upload)
                .map_err(|e| ConfigError::invalid("RATE_LIMIT_UPLOAD", e))?,
            login: Quota::parse(&raw.rate_limit_login_account)
                .map_err(|e| ConfigError::invalid("RATE_LIMIT_LOGIN_ACCOUNT", e))?,
            backend: Backend::parse(&raw.rate_limit_backend)
                .map_err(|e| ConfigError::invalid("RATE_LIMIT_BACKEND", e))?,
        };
        let trusted_proxies = raw
            .trusted_proxies
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        ConfigError::invalid(
                            "TRUSTED_PROXIES",
                            format!("'{s}' is not an IP address or CIDR such as 10.0.0.0/8"),
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
        let cors_allowed_origins = raw
            .cors_allowed_origins
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                browser_origin(s).ok_or_else(|| {
                    ConfigError::invalid(
                        "CORS_ALLOWED_ORIGINS",
                        format!("'{s}' is not an origin such as https://app.example.com (scheme, host and port only; no '*')"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        let media_urls = MediaUrls::new(
            raw.media_url_hosts
                .split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .map(|s| {
                    if MediaUrls::is_valid_entry(&s) {
                        Ok(s)
                    } else {
                        Err(ConfigError::invalid(
                            "MEDIA_URL_HOSTS",
                            format!("'{s}' is not a host name such as cdn.sidechain.fm or a suffix such as .sidechain.fm"),
                        ))
                    }
                })
                .collect::<Result<_, _>>()?,
        );
        if raw.audio_max_bytes == 0 {
            return Err(ConfigError::invalid(
                "AUDIO_MAX_BYTES",
                "must be at least 1",
            ));
        }
        let public_base_url = if raw.public_base_url.trim().is_empty() {
            format!("http://localhost:{}", raw.port)
        } else {
            raw.public_base_url.trim().to_owned()
        };
        let public_base_url = url::Url::parse(&public_base_url)
            .ok()
            .filter(|url| {
                matches!(url.scheme(), "http" | "https")
                    && url.host_str().is_some()
                    && url.query().is_none()
                    && url.fragment().is_none()
            })
            .ok_or_else(|| {
                ConfigError::invalid(
                    "PUBLIC_BASE_URL",
                    "must be an http(s) URL such as https://api.sidechain.fm (no query)",
                )
            })?;
        if raw.upload_idle_timeout.is_zero() || raw.upload_timeout < raw.upload_idle_timeout {
            return Err(ConfigError::invalid(
                "UPLOAD_IDLE_TIMEOUT",
                "must be more than 0 and at most UPLOAD_TIMEOUT",
            ));
        }
        let audio = AudioConfig {
            max_bytes: raw.audio_max_bytes,
            public_base_url,
            upload_timeout: raw.upload_timeout,
            upload_idle_timeout: raw.upload_idle_timeout,
            spool_dir: Some(raw.upload_spool_dir.trim())
                .filter(|d| !d.is_empty())
                .map(std::path::PathBuf::from),
        };
        Ok(Self {
            audio,
            service,
            port: raw.port,
            auth: AuthConfig {
                tokens: TokenSettings {
                    secret: raw.jwt_secret.into_bytes(),
                    previous_secrets,
                    issuer: raw.jwt_issuer,
                    audience: raw.jwt_audience,
                    ttl: raw.jwt_ttl,
                    max_session: raw.session_max_lifetime,
                },
                session_cache_ttl: raw.session_cache_ttl,
                password_hash_concurrency: raw.password_hash_concurrency,
            },
            rate_limits,
            trusted_proxies,
            max_body_bytes: raw.max_body_bytes,
            request_timeout: raw.request_timeout,
            cache_request_timeout: raw.cache_request_timeout,
            cors_allowed_origins,
            media_urls,
            connections,
        })
    }

    /// Where the client API listens.
    pub fn api_addr(&self) -> SocketAddr {
        SocketAddr::new(self.service.bind_address, self.port)
    }
}

/// `text` as a browser's `Origin` header would spell it (`https://host[:port]`, lowercase, no
/// default port, no path), or `None` if it is not an http(s) origin.
fn browser_origin(text: &str) -> Option<String> {
    let url = url::Url::parse(text).ok()?;
    let plain = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && !text.trim_end_matches('/').ends_with(':');
    plain.then(|| url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn defaults_are_the_documented_ones() {
        let config =
            EdgeConfig::from_source(&Source::default().with("JWT_SECRET", SECRET)).expect("loads");
        assert_eq!(config.port, 8787);
        assert_eq!(config.service.metrics_port, 9090);
        assert_eq!(
            config.rate_limits.auth,
            Quota::parse("10/1m").expect("quota")
        );
        assert_eq!(config.rate_limits.default.count, 100);
        assert_eq!(config.auth.tokens.ttl, Duration::from_secs(86_400));
        assert_eq!(
            config.auth.tokens.max_session,
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(config.auth.tokens.issuer, "sidechain");
        assert!(config.trusted_proxies.is_empty());
        assert_eq!(
            config.connections.timeouts.header_read,
            Duration::from_secs(5)
        );
        assert_eq!(config.connections.timeouts.idle, Duration::from_secs(75));
        assert_eq!(config.connections.max_connections, 10_000);
        assert_eq!(config.connections.max_connections_per_ip, 256);
        assert_eq!(config.audio.max_bytes, 50 * 1024 * 1024);
        assert_eq!(
            config.audio.public_base_url.as_str(),
            "http://localhost:8787/"
        );
    }

    #[test]
    fn a_bad_public_base_url_is_named() {
        for bad in ["not a url", "ftp://example.com", "https://example.com/?q=1"] {
            let source = Source::default()
                .with("JWT_SECRET", SECRET)
                .with("PUBLIC_BASE_URL", bad);
            let err = EdgeConfig::from_source(&source).expect_err(bad);
            assert!(err.to_string().contains("PUBLIC_BASE_URL"), "{err}");
        }
    }

    #[test]
    fn connection_limits_are_read() {
        let source = Source::default()
            .with("JWT_SECRET", SECRET)
            .with("HTTP_HEADER_READ_TIMEOUT", "2s")
            .with("HTTP_IDLE_TIMEOUT", "500ms")
            .with("HTTP_MAX_CONNECTIONS", "100")
            .with("HTTP_MAX_CONNECTIONS_PER_IP", "5");
        let config = EdgeConfig::from_source(&source).expect("loads");
        assert_eq!(
            config.connections.timeouts.header_read,
            Duration::from_secs(2)
        );
        assert_eq!(config.connections.timeouts.idle, Duration::from_millis(500));
        assert_eq!(config.connections.max_connections, 100);
        assert_eq!(config.connections.max_connections_per_ip, 5);
        assert_eq!(
            config.service.admin_connection_limits().timeouts,
            config.connections.timeouts,
            "the admin port has the same timeouts"
        );
    }

    #[test]
    fn the_secret_is_required_long_and_never_printed() {
        let err = EdgeConfig::from_source(&Source::default()).expect_err("missing");
        assert_eq!(err.to_string(), "JWT_SECRET is required but not set");
        let err = EdgeConfig::from_source(&Source::default().with("JWT_SECRET", "short"))
            .expect_err("short");
        assert!(matches!(&err, ConfigError::Invalid { var, .. } if var == "JWT_SECRET"));
        let config =
            EdgeConfig::from_source(&Source::default().with("JWT_SECRET", SECRET)).expect("ok");
        assert!(!format!("{config:?}").contains(SECRET));
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("PORT", "http"),
            ("RATE_LIMIT_AUTH", "ten"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, not-an-ip"),
            ("SESSION_CACHE_TTL", "1h"),
            ("CACHE_REQUEST_TIMEOUT", "soon"),
            ("RATE_LIMIT_BACKEND", "memcached"),
            ("CORS_ALLOWED_ORIGINS", "*"),
            ("JWT_PREVIOUS_SECRETS", "short"),
            ("SESSION_MAX_LIFETIME", "1h"),
            ("CORS_ALLOWED_ORIGINS", "https://app.example.com/path"),
            ("CORS_ALLOWED_ORIGINS", "ftp://files.example.com"),
            ("HTTP_HEADER_READ_TIMEOUT", "soon"),
            ("HTTP_HEADER_READ_TIMEOUT", "0s"),
            ("HTTP_IDLE_TIMEOUT", "forever"),
            ("HTTP_IDLE_TIMEOUT", "0"),
            ("HTTP_MAX_CONNECTIONS", "lots"),
            ("HTTP_MAX_CONNECTIONS", "0"),
            ("HTTP_MAX_CONNECTIONS_PER_IP", "-1"),
            ("HTTP_MAX_CONNECTIONS_PER_IP", "0"),
            ("HTTP_MAX_CONNECTIONS_PER_IP", "20000"),
            ("MEDIA_URL_HOSTS", "https://cdn.sidechain.fm"),
            ("MEDIA_URL_HOSTS", "cdn.sidechain.fm, 10.0.0.1"),
        ] {
            let source = Source::default()
                .with("JWT_SECRET", SECRET)
                .with(var, value);
            let err = EdgeConfig::from_source(&source).expect_err(var);
            assert!(
                matches!(&err, ConfigError::Invalid { var: named, .. } if named == var),
                "{var}: {err}"
            );
        }
    }

    #[test]
    fn cors_origins_are_normalised_as_browsers_send_them() {
        let source = Source::default().with("JWT_SECRET", SECRET).with(
            "CORS_ALLOWED_ORIGINS",
            "http://localhost:5173, https://App.Example.com:443/",
        );
        let config = EdgeConfig::from_source(&source).expect("loads");
        assert_eq!(
            config.cors_allowed_origins,
            ["http://localhost:5173", "https://app.example.com"]
        );
        let none =
            EdgeConfig::from_source(&Source::default().with("JWT_SECRET", SECRET)).expect("loads");
        assert!(none.cors_allowed_origins.is_empty());
    }

    #[test]
    fn trusted_proxies_take_addresses_and_networks() {
        let source = Source::default()
            .with("JWT_SECRET", SECRET)
            .with("TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.10");
        let config = EdgeConfig::from_source(&source).expect("loads");
        assert_eq!(config.trusted_proxies.len(), 2);
    }
}
