//! Resolving hidden placeholder items from the read models.
//!
//! Gorse runs with `auto_insert_item = false`, so before feedback on an item Gorse lacks,
//! [`crate::delivery`] writes the item first. It asks the cache service's read models for the
//! post (`posts.get`): a post they hold is written in full, exactly as its `post_created` maps
//! ([`crate::mapping::post_item`]); a deleted post gets no item and its feedback is dropped
//! (Gorse deleted the item and its feedback with `post_deleted`); only a post they do not hold
//! yet gets a hidden placeholder ([`crate::mapping::placeholder_item`]), and its id goes into
//! the Redis sorted set `gorse_placeholders` (score: when first written).
//!
//! A pass over that set runs at start-up, every `GORSE_RECONCILE_INTERVAL`, and shortly after
//! a placeholder is written. Page by page (`GORSE_RECONCILE_BATCH_SIZE` ids: one `posts.get`
//! request, one `POST /api/items`) it writes every post the read models now hold, deletes the
//! item of every deleted post, and keeps the rest, giving up on ids still unknown after
//! `GORSE_RECONCILE_GIVE_UP`. Every write is an idempotent upsert or delete, so passes on
//! several instances, or a pass repeated after a crash, do no harm.
//!
//! Multi-instance race: Gorse v0.5.11 has no insert-if-absent for an item with metadata —
//! `POST /api/items` and `POST /api/item` upsert (server/rest.go 1236-1357 →
//! storage/data/sql.go `BatchInsertItems`, 921-954, `ON CONFLICT DO UPDATE`), `PATCH
//! /api/item/{id}` only updates an existing row (`ModifyItem`, 1120-1150), and the one
//! insert-if-absent (`BatchInsertFeedback` with `auto_insert_item`, 1598-1607, `ON CONFLICT DO
//! NOTHING`) makes a visible item without categories. So a placeholder written after
//! another instance's real upsert would overwrite it. It is written only when the read models
//! do not hold the post, and its pending entry makes the next pass write the full item once
//! they do; after writing items a pass asks the read models again and deletes any item whose
//! post was deleted meanwhile.
//!
//! `user:<id>` items need none of this: the item carries nothing but its id (hidden, category
//! `user`), so its placeholder is the same row `user_registered` writes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use serde::Deserialize;
use sidechain_config::{ConfigError, Source};
use sidechain_events::events::PostCreated;
use sidechain_events::now_ms;
use sidechain_events::rpc::{Post, PostsReply, PostsRequest};
use sidechain_events::subjects::{POSTS_GET, POSTS_GET_MAX_IDS};
use sidechain_gorse::{GorseClient, GorseError, Item};
use sidechain_infra::redis::RedisConn;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::mapping::{post_item, rfc3339};

/// The sorted set of post ids written as placeholders and not resolved yet (score: ms since
/// the epoch when first written).
pub const PENDING_KEY: &str = "gorse_placeholders";

/// How long after a placeholder is written the pass runs, so the read models can catch up
/// with a `post_created` published a moment before.
const SETTLE_DELAY: Duration = Duration::from_secs(1);

/// The reconciliation's settings. Field `foo` is variable `FOO`.
#[derive(Debug, Clone, Deserialize)]
pub struct ReconcileConfig {
    /// `GORSE_RECONCILE_INTERVAL`: how often pending placeholders are resolved (also at
    /// start-up and shortly after one is written).
    #[serde(default = "default_interval", with = "sidechain_config::duration")]
    pub gorse_reconcile_interval: Duration,
    /// `GORSE_RECONCILE_BATCH_SIZE`: ids per `posts.get` request and per item upsert.
    #[serde(default = "default_batch_size")]
    pub gorse_reconcile_batch_size: usize,
    /// `GORSE_RECONCILE_GIVE_UP`: a placeholder whose post the read models still do not know
    /// after this long is dropped from the pending set (it stays hidden in Gorse).
    #[serde(default = "default_give_up", with = "sidechain_config::duration")]
    pub gorse_reconcile_give_up: Duration,
    /// `GORSE_RECONCILE_TIMEOUT`: how long one `posts.get` request may take.
    #[serde(default = "default_timeout", with = "sidechain_config::duration")]
    pub gorse_reconcile_timeout: Duration,
}

fn default_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_batch_size() -> usize {
    100
}
fn default_give_up() -> Duration {
    Duration::from_secs(7 * 86_400)
}
fn default_timeout() -> Duration {
    Duration::from_secs(2)
}

impl ReconcileConfig {
    /// Reads and checks the settings.
    pub fn from_source(source: &Source) -> Result<Self, ConfigError> {
        let config: Self = sidechain_config::load(source)?;
        if !(1..=POSTS_GET_MAX_IDS).contains(&config.gorse_reconcile_batch_size) {
            return Err(ConfigError::invalid(
                "GORSE_RECONCILE_BATCH_SIZE",
                format!("must be 1 to {POSTS_GET_MAX_IDS}"),
            ));
        }
        for (var, value) in [
            ("GORSE_RECONCILE_INTERVAL", config.gorse_reconcile_interval),
            ("GORSE_RECONCILE_GIVE_UP", config.gorse_reconcile_give_up),
            ("GORSE_RECONCILE_TIMEOUT", config.gorse_reconcile_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::invalid(var, "must be greater than 0"));
            }
        }
        Ok(config)
    }
}

/// What the read models say about a post id.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// The post's full Gorse item.
    Post(Box<Item>),
    /// The post was deleted.
    Deleted,
}

/// Why a pass stopped early (the next one starts over).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The cache service did not answer.
    #[error("read models: {0}")]
    ReadModels(String),
    /// Gorse could not be used.
    #[error(transparent)]
    Gorse(#[from] GorseError),
    /// The pending set could not be read or written.
    #[error("pending placeholders (Redis): {0}")]
    Redis(#[from] redis::RedisError),
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// The reconciliation's metrics.
#[derive(Debug, Clone)]
struct ReconcileMetrics {
    items: Family<OutcomeLabels, Counter>,
    duration: Histogram,
    pending: Gauge,
}

impl ReconcileMetrics {
    fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            items: Family::default(),
            duration: Histogram::new([0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0]),
            pending: Gauge::default(),
        };
        // Every outcome from zero, so rates and dashboards have a series before the first one.
        for outcome in ["upserted", "deleted", "gave_up", "refused"] {
            let _ = metrics.items.get_or_create(&OutcomeLabels { outcome });
        }
        registry.register(
            "gorse_reconciled_items",
            "Items resolved from the read models instead of staying hidden placeholders, by \
             outcome: upserted (written in full), deleted (the post was deleted: item deleted or \
             its feedback dropped), gave_up (still unknown after GORSE_RECONCILE_GIVE_UP), \
             refused (Gorse answered 400 to the item; it stays hidden)",
            metrics.items.clone(),
        );
        registry.register_with_unit(
            "gorse_reconcile_duration",
            "Time of one pass over the pending placeholders",
            Unit::Seconds,
            metrics.duration.clone(),
        );
        registry.register(
            "gorse_placeholders_pending",
            "Hidden placeholder items waiting for their post in the read models (gorse_placeholders)",
            metrics.pending.clone(),
        );
        metrics
    }

    fn count(&self, outcome: &'static str, n: usize) {
        if n > 0 {
            self.items
                .get_or_create(&OutcomeLabels { outcome })
                .inc_by(n as u64);
        }
    }
}

/// The Gorse item of a post as the read models hold it.
fn item_of(post: Post) -> Item {
    let timestamp = rfc3339(post.created_at_ms);
    let created = PostCreated {
        post_id: post.id,
        title: post.title,
        audio_url: post.audio_url,
        waveform_url: post.waveform_url,
        bpm: post.bpm,
        key: post.key,
        genres: post.genres,
        duration_seconds: post.duration_seconds,
        daw: post.daw,
        filename: post.filename,
    };
    post_item(&created, timestamp)
}

/// Upserts `items`; if Gorse refuses the request (400: a row it will never take), sends them
/// one by one and takes the refused ones out of `items`, returning their ids (they leave the
/// pending set: retrying cannot help, and they must not block the rest).
async fn write_items(
    gorse: &GorseClient,
    items: &mut Vec<Item>,
) -> Result<Vec<String>, GorseError> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    match gorse.insert_items(items).await {
        Ok(_) => return Ok(Vec::new()),
        Err(GorseError::Rejected { .. }) => {}
        Err(err) => return Err(err),
    }
    let mut refused = Vec::new();
    let mut kept = Vec::new();
    for item in items.drain(..) {
        match gorse.insert_items(std::slice::from_ref(&item)).await {
            Ok(_) => kept.push(item),
            Err(GorseError::Rejected { body, .. }) => {
                tracing::warn!(item = %item.item_id, reason = body, "Gorse refused a post's item; it stays a hidden placeholder");
                refused.push(item.item_id);
            }
            Err(err) => return Err(err),
        }
    }
    *items = kept;
    Ok(refused)
}

/// Resolves placeholders; cheap to clone.
#[derive(Debug, Clone)]
pub struct Reconciler {
    nats: async_nats::Client,
    redis: RedisConn,
    config: ReconcileConfig,
    metrics: ReconcileMetrics,
    wake: Arc<Notify>,
}

impl Reconciler {
    /// A reconciler asking the read models over `nats`, keeping the pending set in `redis`.
    pub fn new(
        nats: async_nats::Client,
        redis: RedisConn,
        config: ReconcileConfig,
        registry: &mut Registry,
    ) -> Self {
        Self {
            nats,
            redis,
            config,
            metrics: ReconcileMetrics::register(registry),
            wake: Arc::new(Notify::new()),
        }
    }

    /// What the read models know of `ids` (at most `GORSE_RECONCILE_BATCH_SIZE` per request);
    /// an id missing from the answer is unknown to them.
    pub async fn resolve(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Resolution>, ReconcileError> {
        let mut found = HashMap::new();
        for chunk in ids.chunks(self.config.gorse_reconcile_batch_size) {
            let reply: PostsReply = sidechain_infra::nats::request(
                &self.nats,
                POSTS_GET,
                &PostsRequest {
                    post_ids: chunk.to_vec(),
                },
                self.config.gorse_reconcile_timeout,
            )
            .await
            .map_err(|err| ReconcileError::ReadModels(err.to_string()))?;
            if let Some(error) = reply.error {
                return Err(ReconcileError::ReadModels(error.message));
            }
            for id in reply.deleted_post_ids {
                found.insert(id, Resolution::Deleted);
            }
            for post in reply.posts {
                found.insert(post.id.clone(), Resolution::Post(Box::new(item_of(post))));
            }
        }
        Ok(found)
    }

    /// Counts items written in full, or feedback dropped for a deleted post, at lookup time.
    pub fn resolved_at_lookup(&self, upserted: usize, deleted: usize) {
        self.metrics.count("upserted", upserted);
        self.metrics.count("deleted", deleted);
    }

    /// Remembers placeholders about to be written, and wakes the pass. Written before the
    /// placeholder itself, so a crash in between leaves a pending id (harmless: the pass writes
    /// the post or deletes the item), never an orphaned placeholder.
    pub async fn track(&self, ids: &[String]) -> Result<(), redis::RedisError> {
        if ids.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut cmd = redis::cmd("ZADD");
        // NX: a placeholder written again keeps the time it was first written.
        cmd.arg(PENDING_KEY).arg("NX");
        for id in ids {
            cmd.arg(now).arg(id);
        }
        let mut conn = self.redis.clone();
        let () = cmd.query_async(&mut conn).await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Pending placeholders.
    pub async fn pending(&self) -> Result<u64, redis::RedisError> {
        let mut conn = self.redis.clone();
        redis::cmd("ZCARD")
            .arg(PENDING_KEY)
            .query_async(&mut conn)
            .await
    }

    /// One pass over every pending placeholder; returns how many were resolved (written,
    /// deleted or given up).
    pub async fn pass(&self, gorse: &GorseClient) -> Result<usize, ReconcileError> {
        let started = Instant::now();
        let result = self.pass_inner(gorse).await;
        self.metrics
            .duration
            .observe(started.elapsed().as_secs_f64());
        if let Ok(pending) = self.pending().await {
            self.metrics.pending.set(pending as i64);
        }
        result
    }

    async fn pass_inner(&self, gorse: &GorseClient) -> Result<usize, ReconcileError> {
        let batch = self.config.gorse_reconcile_batch_size;
        let give_up_before = now_ms() - self.config.gorse_reconcile_give_up.as_millis() as i64;
        let mut conn = self.redis.clone();
        let mut offset = 0usize;
        let mut resolved_total = 0;
        loop {
            let page: Vec<(String, i64)> = redis::cmd("ZRANGE")
                .arg(PENDING_KEY)
                .arg(offset)
                .arg(offset + batch - 1)
                .arg("WITHSCORES")
                .query_async(&mut conn)
                .await?;
            if page.is_empty() {
                break;
            }
            let ids: Vec<String> = page.iter().map(|(id, _)| id.clone()).collect();
            let found = self.resolve(&ids).await?;
            let mut items = Vec::new();
            let mut deleted = Vec::new();
            for (id, resolution) in &found {
                match resolution {
                    Resolution::Post(item) => items.push((**item).clone()),
                    Resolution::Deleted => deleted.push(id.clone()),
                }
            }
            let refused = write_items(gorse, &mut items).await?;
            if !items.is_empty() {
                // A post deleted while its item was being written: delete the item again.
                let written: Vec<String> = items.iter().map(|i| i.item_id.clone()).collect();
                for (id, again) in self.resolve(&written).await? {
                    if again == Resolution::Deleted && !deleted.contains(&id) {
                        deleted.push(id);
                    }
                }
            }
            for id in &deleted {
                gorse.delete_item(id).await?;
            }
            let given_up: Vec<String> = page
                .iter()
                .filter(|(id, first)| !found.contains_key(id) && *first < give_up_before)
                .map(|(id, _)| id.clone())
                .collect();
            for id in &given_up {
                tracing::warn!(item = %id, "the read models never knew this post; its Gorse item stays a hidden placeholder");
            }
            // Refused items are in `found` too: they leave the set with it.
            let done: Vec<&String> = found.keys().chain(given_up.iter()).collect();
            if !done.is_empty() {
                let () = redis::cmd("ZREM")
                    .arg(PENDING_KEY)
                    .arg(&done)
                    .query_async(&mut conn)
                    .await?;
            }
            let upserted = items.len().saturating_sub(
                deleted
                    .iter()
                    .filter(|id| items.iter().any(|i| &&i.item_id == id))
                    .count(),
            );
            self.metrics.count("upserted", upserted);
            self.metrics.count("deleted", deleted.len());
            self.metrics.count("gave_up", given_up.len());
            self.metrics.count("refused", refused.len());
            if upserted + deleted.len() > 0 {
                tracing::info!(
                    upserted,
                    deleted = deleted.len(),
                    "placeholder items resolved from the read models"
                );
            }
            resolved_total += done.len();
            offset += page.len() - done.len();
            if page.len() < batch {
                break;
            }
        }
        Ok(resolved_total)
    }

    /// Runs a pass at start-up, every interval, and shortly after a placeholder is written,
    /// until `shutdown`.
    pub async fn run(self, gorse: GorseClient, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(self.config.gorse_reconcile_interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = self.wake.notified() => {
                    tokio::select! {
                        () = tokio::time::sleep(SETTLE_DELAY.min(self.config.gorse_reconcile_interval)) => {}
                        () = shutdown.cancelled() => return,
                    }
                }
                () = shutdown.cancelled() => return,
            }
            if let Err(err) = self.pass(&gorse).await {
                tracing::warn!(error = %err, "placeholder reconciliation stopped early; the next pass retries");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_documented_ones() {
        let config = ReconcileConfig::from_source(&Source::default()).expect("defaults");
        assert_eq!(config.gorse_reconcile_interval, Duration::from_secs(60));
        assert_eq!(config.gorse_reconcile_batch_size, 100);
        assert_eq!(
            config.gorse_reconcile_give_up,
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(config.gorse_reconcile_timeout, Duration::from_secs(2));
    }

    #[test]
    fn bad_values_are_named() {
        for (var, value) in [
            ("GORSE_RECONCILE_BATCH_SIZE", "0"),
            ("GORSE_RECONCILE_BATCH_SIZE", "1001"),
            ("GORSE_RECONCILE_INTERVAL", "0s"),
            ("GORSE_RECONCILE_GIVE_UP", "soon"),
        ] {
            let err =
                ReconcileConfig::from_source(&Source::default().with(var, value)).expect_err(var);
            assert_eq!(err.var(), var, "{err}");
        }
    }

    #[test]
    fn a_post_from_the_read_models_is_the_item_its_post_created_writes() {
        let post = Post {
            id: "p1".into(),
            title: "Night drive".into(),
            bpm: 124.5,
            key: "C minor".into(),
            genres: vec!["techno".into()],
            created_at_ms: 1_700_000_000_000,
            ..Default::default()
        };
        let item = item_of(post);
        let created = PostCreated {
            post_id: "p1".into(),
            title: "Night drive".into(),
            bpm: 124.5,
            key: "C minor".into(),
            genres: vec!["techno".into()],
            ..Default::default()
        };
        assert_eq!(item, post_item(&created, rfc3339(1_700_000_000_000)));
        assert!(!item.is_hidden);
        assert_eq!(item.categories, ["techno", "bpm_120", "key_c_minor"]);
    }
}
