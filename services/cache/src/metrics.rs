//! The cache service's metrics (all prefixed `sidechain_`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FeedResult {
    feed: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FeedLabel {
    feed: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FallbackLabels {
    feed: &'static str,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SubjectLabels {
    subject: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LookupLabels {
    what: &'static str,
    result: &'static str,
}

/// How a page request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageResult {
    /// From this instance's memory.
    HitMemory,
    /// From Redis.
    HitRedis,
    /// Built (a rebuild).
    Miss,
    /// Waited for another request's rebuild of the same page.
    Coalesced,
}

impl PageResult {
    const fn as_str(self) -> &'static str {
        match self {
            PageResult::HitMemory => "hit_memory",
            PageResult::HitRedis => "hit_redis",
            PageResult::Miss => "miss",
            PageResult::Coalesced => "coalesced",
        }
    }
}

/// Metrics handles, cheap to clone.
#[derive(Debug, Clone)]
pub struct CacheMetrics {
    pages: Family<FeedResult, Counter>,
    rebuild_duration: Family<FeedLabel, Histogram>,
    invalidations: Family<FeedLabel, Counter>,
    gorse_fallbacks: Family<FallbackLabels, Counter>,
    served: Family<SubjectLabels, Histogram>,
    applied: Family<KindLabel, Counter>,
    poison: Counter,
    apply_duration: Histogram,
    apply_failures: Counter,
    stream_rebuilds: Counter,
    /// Last stream sequence applied to the read models.
    pub applied_seq: Gauge,
    /// Events in the stream not yet applied.
    pub consumer_lag: Gauge,
    lookups: Family<LookupLabels, Counter>,
    sessions: Family<FeedResult, Counter>,
}

impl CacheMetrics {
    /// Registers every metric.
    pub fn register(registry: &mut Registry) -> Self {
        let latency = || Histogram::new(sidechain_telemetry::metrics::latency_buckets());
        let metrics = Self {
            pages: Family::default(),
            rebuild_duration: Family::new_with_constructor(latency),
            invalidations: Family::default(),
            gorse_fallbacks: Family::default(),
            served: Family::new_with_constructor(latency),
            applied: Family::default(),
            poison: Counter::default(),
            apply_duration: latency(),
            apply_failures: Counter::default(),
            stream_rebuilds: Counter::default(),
            applied_seq: Gauge::default(),
            consumer_lag: Gauge::default(),
            lookups: Family::default(),
            sessions: Family::default(),
        };
        registry.register(
            "cache_page_requests",
            "Feed page requests by feed and result (hit_memory|hit_redis|miss|coalesced); hit ratio = 1 - miss/total",
            metrics.pages.clone(),
        );
        registry.register_with_unit(
            "cache_rebuild_duration",
            "Time to build a feed page on a miss, by feed",
            Unit::Seconds,
            metrics.rebuild_duration.clone(),
        );
        registry.register(
            "cache_invalidations",
            "Cached page scopes invalidated by events, by feed",
            metrics.invalidations.clone(),
        );
        registry.register(
            "cache_gorse_fallbacks",
            "Feeds built without Gorse recommendations, by feed and reason (unhealthy|error)",
            metrics.gorse_fallbacks.clone(),
        );
        registry.register_with_unit(
            "cache_request_duration",
            "Time to answer a NATS request, by subject and outcome",
            Unit::Seconds,
            metrics.served.clone(),
        );
        registry.register(
            "cache_events_applied",
            "Events applied to the read models, by kind",
            metrics.applied.clone(),
        );
        registry.register(
            "cache_events_poison",
            "Undecodable events skipped by the read-model builder",
            metrics.poison.clone(),
        );
        registry.register_with_unit(
            "cache_apply_duration",
            "Time to apply one batch of events to Redis",
            Unit::Seconds,
            metrics.apply_duration.clone(),
        );
        registry.register(
            "cache_apply_failures",
            "Failed attempts to apply a batch (retried)",
            metrics.apply_failures.clone(),
        );
        registry.register(
            "cache_stream_rebuilds",
            "Times the read models were rebuilt by replaying the stream (Redis was empty)",
            metrics.stream_rebuilds.clone(),
        );
        registry.register(
            "cache_applied_sequence",
            "Last stream sequence applied to the read models",
            metrics.applied_seq.clone(),
        );
        registry.register(
            "cache_consumer_lag_messages",
            "Events in the stream not yet applied to the read models",
            metrics.consumer_lag.clone(),
        );
        registry.register(
            "cache_memory_lookups",
            "In-process lookups of posts, counts and follow sets, by result",
            metrics.lookups.clone(),
        );
        registry.register(
            "cache_session_checks",
            "Session checks by result (hit|active|revoked|unknown_user|unavailable)",
            metrics.sessions.clone(),
        );
        metrics
    }

    /// A page request was answered.
    pub fn page(&self, feed: &'static str, result: PageResult) {
        self.pages
            .get_or_create(&FeedResult {
                feed,
                result: result.as_str(),
            })
            .inc();
    }

    /// A page was built.
    pub fn rebuilt(&self, feed: &'static str, seconds: f64) {
        self.rebuild_duration
            .get_or_create(&FeedLabel { feed })
            .observe(seconds);
    }

    /// A scope was invalidated.
    pub fn invalidated(&self, feed: &'static str) {
        self.invalidations.get_or_create(&FeedLabel { feed }).inc();
    }

    /// A feed went without Gorse.
    pub fn gorse_fallback(&self, feed: &'static str, reason: &'static str) {
        self.gorse_fallbacks
            .get_or_create(&FallbackLabels { feed, reason })
            .inc();
    }

    /// A request was answered.
    pub fn served(&self, subject: &'static str, outcome: &'static str, seconds: f64) {
        self.served
            .get_or_create(&SubjectLabels { subject, outcome })
            .observe(seconds);
    }

    /// An event was applied.
    pub fn applied(&self, kind: &'static str) {
        self.applied.get_or_create(&KindLabel { kind }).inc();
    }

    /// An event was undecodable.
    pub fn poison(&self) {
        self.poison.inc();
    }

    /// A batch was applied.
    pub fn apply_took(&self, seconds: f64) {
        self.apply_duration.observe(seconds);
    }

    /// A batch failed to apply.
    pub fn apply_failed(&self) {
        self.apply_failures.inc();
    }

    /// A rebuild from the stream began.
    pub fn stream_rebuild(&self) {
        self.stream_rebuilds.inc();
    }

    /// An in-process lookup.
    pub fn lookup(&self, what: &'static str, hit: bool) {
        self.lookups
            .get_or_create(&LookupLabels {
                what,
                result: if hit { "hit" } else { "miss" },
            })
            .inc();
    }

    /// A session check.
    pub fn session(&self, result: &'static str) {
        self.sessions
            .get_or_create(&FeedResult {
                feed: "session",
                result,
            })
            .inc();
    }
}
