//! Feed pages cached in two tiers: this instance's memory, then Redis (`page:<scope>` hashes,
//! field `<limit>:<offset>`), each with the feed's TTL. A page is stored as a skeleton (post
//! ids and sources); counts and viewer flags are filled in when it is served.
//!
//! - Stampedes: concurrent misses for one page in an instance make one rebuild; the others
//!   wait for it (counted as `coalesced`).
//! - Invalidation: the read-model applier deletes `page:<scope>` in Redis in the same
//!   transaction as the change, then broadcasts the scope; each instance bumps the scope's
//!   generation, which makes its in-memory copies unreachable at once (no scans).
//! - Pages of a scope expire together in Redis, at most the TTL after the first was written.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;
use prost::Message as _;
use sidechain_events::rpc::PageSkeleton;
use sidechain_infra::redis::RedisConn;

use super::Scope;
use crate::keys;
use crate::metrics::{CacheMetrics, PageResult};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PageKey {
    scope: Scope,
    generation: u64,
    limit: u32,
    offset: u32,
}

#[derive(Debug, Clone)]
struct CachedPage {
    skeleton: Arc<PageSkeleton>,
    ttl: Duration,
}

struct PageExpiry;

impl Expiry<PageKey, CachedPage> for PageExpiry {
    fn expire_after_create(
        &self,
        _key: &PageKey,
        page: &CachedPage,
        _now: std::time::Instant,
    ) -> Option<Duration> {
        Some(page.ttl)
    }
}

/// Why a page could not be produced.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PageError {
    /// Redis failed while building.
    #[error("read models unavailable: {0}")]
    Unavailable(String),
}

/// The two-tier page cache.
#[derive(Clone)]
pub struct PageCache {
    memory: Cache<PageKey, CachedPage>,
    generations: moka::sync::Cache<Scope, u64>,
    next_generation: Arc<AtomicU64>,
    redis: RedisConn,
    memory_max_ttl: Duration,
    enabled: bool,
    metrics: CacheMetrics,
}

impl std::fmt::Debug for PageCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageCache")
            .field("in_memory", &self.memory.entry_count())
            .finish_non_exhaustive()
    }
}

impl PageCache {
    /// A cache holding up to `entries` pages in memory, each at most `memory_max_ttl`; when not
    /// `enabled`, every request builds its page.
    pub fn new(
        redis: RedisConn,
        entries: u64,
        memory_max_ttl: Duration,
        enabled: bool,
        metrics: CacheMetrics,
    ) -> Self {
        Self {
            memory: Cache::builder()
                .max_capacity(entries)
                .expire_after(PageExpiry)
                .build(),
            // Generations must outlive the pages made under them (see `invalidate`).
            generations: moka::sync::Cache::builder()
                .max_capacity(entries * 4)
                .time_to_live(memory_max_ttl * 2)
                .build(),
            next_generation: Arc::new(AtomicU64::new(1)),
            redis,
            memory_max_ttl,
            enabled,
            metrics,
        }
    }

    /// The page, from memory, Redis, or `build` (whose result is cached for `ttl`).
    pub async fn get_or_build<F, Fut>(
        &self,
        scope: &Scope,
        limit: u32,
        offset: u32,
        ttl: Duration,
        build: F,
    ) -> Result<Arc<PageSkeleton>, PageError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<PageSkeleton, PageError>>,
    {
        let feed = scope.feed().as_str();
        if !self.enabled {
            self.metrics.page(feed, PageResult::Miss);
            let started = Instant::now();
            let skeleton = build().await?;
            self.metrics.rebuilt(feed, started.elapsed().as_secs_f64());
            return Ok(Arc::new(skeleton));
        }
        let key = PageKey {
            generation: self.generations.get(scope).unwrap_or(0),
            scope: *scope,
            limit,
            offset,
        };
        if let Some(page) = self.memory.get(&key).await {
            self.metrics.page(feed, PageResult::HitMemory);
            return Ok(page.skeleton);
        }
        let initialised_here = AtomicBool::new(false);
        let redis_key = keys::page(scope);
        let field = format!("{limit}:{offset}");
        let memory_ttl = ttl.min(self.memory_max_ttl);
        let result = self
            .memory
            .try_get_with(key, async {
                initialised_here.store(true, Ordering::Relaxed);
                let mut conn = self.redis.clone();
                let stored: Option<Vec<u8>> = redis::cmd("HGET")
                    .arg(&redis_key)
                    .arg(&field)
                    .query_async(&mut conn)
                    .await
                    .unwrap_or(None);
                if let Some(skeleton) =
                    stored.and_then(|bytes| PageSkeleton::decode(bytes.as_slice()).ok())
                {
                    self.metrics.page(feed, PageResult::HitRedis);
                    return Ok(CachedPage {
                        skeleton: Arc::new(skeleton),
                        ttl: memory_ttl,
                    });
                }
                self.metrics.page(feed, PageResult::Miss);
                let started = Instant::now();
                let skeleton = build().await?;
                self.metrics.rebuilt(feed, started.elapsed().as_secs_f64());
                let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                let stored: redis::RedisResult<()> = redis::pipe()
                    .hset(&redis_key, &field, skeleton.encode_to_vec())
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg(&redis_key)
                    .arg(ttl_ms)
                    .arg("NX")
                    .ignore()
                    .query_async(&mut conn)
                    .await;
                if let Err(err) = stored {
                    tracing::debug!(error = %err, "could not store a page in Redis");
                }
                Ok(CachedPage {
                    skeleton: Arc::new(skeleton),
                    ttl: memory_ttl,
                })
            })
            .await;
        if !initialised_here.load(Ordering::Relaxed) {
            self.metrics.page(feed, PageResult::Coalesced);
        }
        result
            .map(|page| page.skeleton)
            .map_err(|err: Arc<PageError>| (*err).clone())
    }

    /// Makes every in-memory page of `scope` unreachable (Redis was already updated by the
    /// applier's transaction).
    pub fn invalidate(&self, scope: &Scope) {
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        self.generations.insert(*scope, generation);
        self.metrics.invalidated(scope.feed().as_str());
    }

    /// Forgets every in-memory page (read models being rebuilt).
    pub fn invalidate_all(&self) {
        self.memory.invalidate_all();
    }
}
