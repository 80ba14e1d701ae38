//! Rate limiting: a GCRA token bucket per client and route class, kept in Redis so every edge
//! instance shares one budget, with an in-process fallback (`governor`, the same algorithm)
//! while Redis is unreachable.
//!
//! During a Redis outage each edge instance limits on its own, so a client spread over N
//! instances gets up to N× its quota; requests are still limited and still served. The switch
//! is logged once each way and exported as `sidechain_rate_limit_fallback_active`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::middleware::StateInformationMiddleware;
use governor::{DefaultKeyedRateLimiter, clock::Clock as _};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use sidechain_infra::redis::RedisConn;

/// Route classes, each with its own quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Every route not in another class.
    Default,
    /// Register, login, refresh: brute-force targets.
    Auth,
    /// Post creation.
    Upload,
    /// Sign-in attempts on one account, whatever address they come from (keyed
    /// `account:<sha256 of the login>`): guessing one user's password from many addresses
    /// meets a backoff that the per-address auth class can't give.
    Login,
}

impl Class {
    /// Name used in keys, metrics and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Class::Default => "default",
            Class::Auth => "auth",
            Class::Upload => "upload",
            Class::Login => "login",
        }
    }
}

/// `count` requests per `period`, all usable at once (burst = count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests per period.
    pub count: u32,
    /// The period.
    pub period: Duration,
}

impl Quota {
    /// Parses `100/1m`, `10/30s` or a bare `100` (per minute).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (count, period) = match text.split_once('/') {
            Some((count, period)) => (count.trim(), sidechain_config::duration::parse(period)?),
            None => (text.trim(), Duration::from_secs(60)),
        };
        let count: u32 = count
            .parse()
            .ok()
            .filter(|c| *c > 0)
            .ok_or_else(|| format!("'{text}' is not a quota such as 100/1m"))?;
        if period < Duration::from_millis(1) {
            return Err(format!("'{text}' has a period shorter than 1ms"));
        }
        // The Redis bucket keeps time in microseconds.
        if period / count < Duration::from_micros(1) {
            return Err(format!(
                "'{text}' allows more than one request per microsecond"
            ));
        }
        Ok(Self { count, period })
    }

    /// Time between two requests at the sustained rate.
    pub fn interval(&self) -> Duration {
        self.period / self.count
    }
}

/// Which store decides (`RATE_LIMIT_BACKEND`), and which one did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The shared Redis bucket (falls back to `Local` while Redis is unreachable). Default.
    Redis,
    /// This instance's in-process bucket only.
    Local,
    /// No limits (behind a gateway that limits already, or to measure the limiter's cost).
    Off,
}

impl Backend {
    /// Name in configuration and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Backend::Redis => "redis",
            Backend::Local => "local",
            Backend::Off => "off",
        }
    }

    /// Parses `redis`, `local` or `off`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "redis" => Ok(Backend::Redis),
            "local" => Ok(Backend::Local),
            "off" => Ok(Backend::Off),
            other => Err(format!("'{other}' is not one of redis, local, off")),
        }
    }
}

/// Quotas per route class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// `RATE_LIMIT_DEFAULT` (100/1m): everything not in another class.
    pub default: Quota,
    /// `RATE_LIMIT_AUTH` (10/1m): register, login, refresh; keyed by client IP.
    pub auth: Quota,
    /// `RATE_LIMIT_UPLOAD` (20/1m): post creation.
    pub upload: Quota,
    /// `RATE_LIMIT_LOGIN_ACCOUNT` (10/15m): sign-in attempts per account.
    pub login: Quota,
    /// `RATE_LIMIT_BACKEND` (`redis`): `redis` (shared, in-process fallback), `local`
    /// (in-process only) or `off`.
    pub backend: Backend,
}

impl RateLimits {
    /// The quota of a class.
    pub fn quota(&self, class: Class) -> Quota {
        match class {
            Class::Default => self.default,
            Class::Auth => self.auth,
            Class::Upload => self.upload,
            Class::Login => self.login,
        }
    }
}

/// The outcome of one check, with what the `RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The quota's request count.
    pub limit: u32,
    /// Requests still allowed right now.
    pub remaining: u32,
    /// Until the bucket is full again.
    pub reset_after: Duration,
    /// Until the next request is allowed (zero when allowed).
    pub retry_after: Duration,
    /// Who decided.
    pub backend: Backend,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    class: &'static str,
    decision: &'static str,
    backend: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    backend: &'static str,
}

#[derive(Debug, Clone)]
struct Metrics {
    decisions: Family<DecisionLabels, Counter>,
    check_duration: Family<BackendLabels, Histogram>,
    fallback_active: Gauge,
}

/// How long a Redis check may take before this request uses the local bucket.
const REDIS_BUDGET: Duration = Duration::from_millis(250);
/// After a Redis failure, how long to use the local buckets before trying Redis again.
const REDIS_RETRY_AFTER: Duration = Duration::from_secs(1);

type LocalBuckets = DefaultKeyedRateLimiter<String, StateInformationMiddleware>;

/// The limiter shared by all requests of an edge instance.
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    redis: RedisConn,
    script: redis::Script,
    quotas: RateLimits,
    local: [(Class, LocalBuckets); 4],
    in_fallback: AtomicBool,
    /// Milliseconds since `epoch` before which Redis is not tried again.
    redis_retry_at_ms: AtomicU64,
    epoch: Instant,
    metrics: Metrics,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("quotas", &self.inner.quotas)
            .field(
                "in_fallback",
                &self.inner.in_fallback.load(Ordering::Relaxed),
            )
            .finish()
    }
}

impl RateLimiter {
    /// A limiter over `redis` with the configured quotas; registers its metrics.
    pub fn new(redis: RedisConn, quotas: RateLimits, registry: &mut Registry) -> Self {
        let metrics = Metrics {
            decisions: Family::default(),
            check_duration: Family::new_with_constructor(|| {
                Histogram::new(sidechain_telemetry::metrics::latency_buckets())
            }),
            fallback_active: Gauge::default(),
        };
        registry.register(
            "rate_limit_decisions",
            "Rate-limit decisions by route class, decision (allowed|limited) and backend (redis|local)",
            metrics.decisions.clone(),
        );
        registry.register_with_unit(
            "rate_limit_check_duration",
            "Time to take a rate-limit decision, by backend",
            Unit::Seconds,
            metrics.check_duration.clone(),
        );
        registry.register(
            "rate_limit_fallback_active",
            "1 while Redis is unreachable and limits are enforced per instance",
            metrics.fallback_active.clone(),
        );
        let local = |class: Class| (class, local_buckets(quotas.quota(class)));
        Self {
            inner: Arc::new(Inner {
                redis,
                script: redis::Script::new(include_str!("gcra.lua")),
                quotas,
                local: [
                    local(Class::Default),
                    local(Class::Auth),
                    local(Class::Upload),
                    local(Class::Login),
                ],
                in_fallback: AtomicBool::new(false),
                redis_retry_at_ms: AtomicU64::new(0),
                epoch: Instant::now(),
                metrics,
            }),
        }
    }

    /// Takes one request from `subject`'s bucket in `class` (`subject` is `user:<id>` or `ip:<addr>`).
    pub async fn check(&self, class: Class, subject: &str) -> Decision {
        let started = Instant::now();
        let decision = match self.inner.quotas.backend {
            Backend::Off => {
                let quota = self.inner.quotas.quota(class);
                Decision {
                    allowed: true,
                    limit: quota.count,
                    remaining: quota.count,
                    reset_after: Duration::ZERO,
                    retry_after: Duration::ZERO,
                    backend: Backend::Off,
                }
            }
            Backend::Local => self.check_local(class, subject),
            Backend::Redis => self.check_shared(class, subject).await,
        };
        let metrics = &self.inner.metrics;
        metrics
            .check_duration
            .get_or_create(&BackendLabels {
                backend: decision.backend.as_str(),
            })
            .observe(started.elapsed().as_secs_f64());
        metrics
            .decisions
            .get_or_create(&DecisionLabels {
                class: class.as_str(),
                decision: if decision.allowed {
                    "allowed"
                } else {
                    "limited"
                },
                backend: decision.backend.as_str(),
            })
            .inc();
        decision
    }

    /// The shared Redis bucket, or this instance's while Redis is unreachable or slow.
    async fn check_shared(&self, class: Class, subject: &str) -> Decision {
        if !self.redis_usable() {
            return self.check_local(class, subject);
        }
        match tokio::time::timeout(REDIS_BUDGET, self.check_redis(class, subject)).await {
            Ok(Ok(decision)) => {
                self.redis_recovered();
                decision
            }
            Ok(Err(err)) => {
                self.redis_failed(&err.to_string());
                self.check_local(class, subject)
            }
            Err(_) => {
                self.redis_failed("timed out");
                self.check_local(class, subject)
            }
        }
    }

    /// Drops idle local buckets; call periodically (the map grows with distinct clients).
    pub fn forget_idle_local_buckets(&self) {
        for (_, buckets) in &self.inner.local {
            buckets.retain_recent();
            buckets.shrink_to_fit();
        }
    }

    async fn check_redis(&self, class: Class, subject: &str) -> redis::RedisResult<Decision> {
        let quota = self.inner.quotas.quota(class);
        let mut conn = self.inner.redis.clone();
        let (allowed, remaining, retry_after_us, reset_after_us): (i64, i64, i64, i64) = self
            .inner
            .script
            .key(format!("ratelimit:{}:{subject}", class.as_str()))
            .arg(u64::try_from(quota.interval().as_micros()).unwrap_or(u64::MAX))
            .arg(quota.count)
            .invoke_async(&mut conn)
            .await?;
        Ok(Decision {
            allowed: allowed == 1,
            limit: quota.count,
            remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
            reset_after: micros(reset_after_us),
            retry_after: micros(retry_after_us),
            backend: Backend::Redis,
        })
    }

    /// Decides with this instance's in-process bucket only — what every check does while Redis
    /// is unreachable (exposed for benchmarks and tests).
    pub fn check_local(&self, class: Class, subject: &str) -> Decision {
        let quota = self.inner.quotas.quota(class);
        let buckets = self
            .inner
            .local
            .iter()
            .find_map(|(c, b)| (*c == class).then_some(b))
            .unwrap_or(&self.inner.local[0].1);
        let key = subject.to_owned();
        match buckets.check_key(&key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    limit: quota.count,
                    remaining,
                    reset_after: quota.interval() * (quota.count - remaining),
                    retry_after: Duration::ZERO,
                    backend: Backend::Local,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
                Decision {
                    allowed: false,
                    limit: quota.count,
                    remaining: 0,
                    reset_after: quota.period,
                    retry_after: wait,
                    backend: Backend::Local,
                }
            }
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.inner.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn redis_usable(&self) -> bool {
        self.now_ms() >= self.inner.redis_retry_at_ms.load(Ordering::Relaxed)
    }

    fn redis_failed(&self, why: &str) {
        let retry_at = self.now_ms() + u64::try_from(REDIS_RETRY_AFTER.as_millis()).unwrap_or(1000);
        self.inner
            .redis_retry_at_ms
            .store(retry_at, Ordering::Relaxed);
        if !self.inner.in_fallback.swap(true, Ordering::Relaxed) {
            self.inner.metrics.fallback_active.set(1);
            tracing::warn!(
                error = why,
                "Redis unreachable; rate limits now enforced per instance"
            );
        }
    }

    fn redis_recovered(&self) {
        if self.inner.in_fallback.swap(false, Ordering::Relaxed) {
            self.inner.metrics.fallback_active.set(0);
            tracing::info!("Redis reachable again; rate limits shared across instances");
        }
    }
}

fn local_buckets(quota: Quota) -> LocalBuckets {
    let burst = NonZeroU32::new(quota.count).unwrap_or(NonZeroU32::MIN);
    let gov_quota = governor::Quota::with_period(quota.interval())
        .unwrap_or_else(|| governor::Quota::per_second(burst))
        .allow_burst(burst);
    DefaultKeyedRateLimiter::keyed(gov_quota).with_middleware::<StateInformationMiddleware>()
}

fn micros(value: i64) -> Duration {
    Duration::from_micros(u64::try_from(value.max(0)).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_parse_in_the_documented_forms() {
        assert_eq!(
            Quota::parse("100/1m"),
            Ok(Quota {
                count: 100,
                period: Duration::from_secs(60)
            })
        );
        assert_eq!(
            Quota::parse("10/30s"),
            Ok(Quota {
                count: 10,
                period: Duration::from_secs(30)
            })
        );
        assert_eq!(
            Quota::parse("20").map(|q| q.period),
            Ok(Duration::from_secs(60))
        );
        for bad in ["", "0/1m", "ten/1m", "10/soon", "10/0s", "1000000000/1m"] {
            assert!(Quota::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_interval_spreads_the_quota_over_the_period() {
        let quota = Quota::parse("10/1m").expect("quota");
        assert_eq!(quota.interval(), Duration::from_secs(6));
    }
}
