//! Feed pages: which posts (built from the read models, Gorse and the trending ranking),
//! cached as skeletons ([`page_cache`]), then hydrated with current counts and the viewer's
//! flags when served.
//!
//! | feed | built from | source label |
//! |---|---|---|
//! | timeline | the viewer's fanned-out timeline, merged with posts of followed big authors | following |
//! | user | the user's posts | recent |
//! | trending | the trending ranking ([`ranking::trending_score`]) | trending |
//! | for-you | Gorse recommendations; trending while Gorse is unhealthy or fails | gorse / trending |
//! | unified | following, Gorse, trending, recent mixed 50/25/15/10 %, without the viewer's own posts | each item's own |

pub mod cursor;
pub mod page_cache;
pub mod ranking;
mod scope;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use redis::AsyncCommands as _;
use sidechain_events::rpc::{
    self, CacheInvalidation, ErrorCode, FeedItem, FeedKind, FeedPage, FeedReply, FeedRequest,
    ItemSource, PageSkeleton, RpcError,
};
use sidechain_events::{PostId, UserId};
use sidechain_gorse::GorseClient;
use sidechain_infra::status::GorseStatusView;

use crate::config::{CacheConfig, ModelConfig};
use crate::keys;
use crate::metrics::CacheMetrics;
use crate::store::Store;
use cursor::Cursor;
use page_cache::{PageCache, PageError};
pub use scope::{Feed, Scope, ScopeParseError};

/// Largest page.
const MAX_LIMIT: u32 = 100;
/// Deepest offset (as the edge enforces).
const MAX_OFFSET: u32 = 10_000;
/// Posts a snapshot of a ranked feed holds (deeper pages take a larger one).
const SNAPSHOT_SIZE: usize = 200;
/// How long a reader may page through one snapshot; reading page one takes a new one.
const SNAPSHOT_TTL: Duration = Duration::from_secs(15 * 60);
/// Entries read beyond a cursor page, standing in for posts deleted but not yet applied.
const CURSOR_SPARE: usize = 5;
/// Posts kept in the trending ranking.
const TRENDING_SIZE: usize = 500;

/// Serves feed requests.
#[derive(Clone)]
pub struct Feeds {
    store: Store,
    pages: PageCache,
    gorse: GorseClient,
    gorse_status: GorseStatusView,
    ranking: moka::future::Cache<(), Arc<Vec<PostId>>>,
    ttl: CacheConfig,
    models: ModelConfig,
    metrics: CacheMetrics,
}

impl std::fmt::Debug for Feeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feeds")
            .field("pages", &self.pages)
            .finish_non_exhaustive()
    }
}

fn invalid(message: &str) -> FeedReply {
    FeedReply {
        result: Some(rpc::feed_reply::Result::Error(RpcError {
            code: ErrorCode::InvalidArgument as i32,
            message: message.to_owned(),
        })),
    }
}

fn unavailable() -> FeedReply {
    FeedReply {
        result: Some(rpc::feed_reply::Result::Error(RpcError {
            code: ErrorCode::Unavailable as i32,
            message: "feeds are temporarily unavailable; retry shortly".to_owned(),
        })),
    }
}

fn redis_error(err: redis::RedisError) -> PageError {
    PageError::Unavailable(err.to_string())
}

impl Feeds {
    /// The feed service.
    pub fn new(
        store: Store,
        pages: PageCache,
        gorse: GorseClient,
        gorse_status: GorseStatusView,
        ttl: CacheConfig,
        models: ModelConfig,
        metrics: CacheMetrics,
    ) -> Self {
        // Recomputed on the next page build after this long (or after a post is deleted).
        let ranking_ttl = ttl.cache_ttl_trending.min(ttl.cache_memory_max_ttl);
        Self {
            store,
            pages,
            gorse,
            gorse_status,
            ranking: moka::future::Cache::builder()
                .max_capacity(1)
                .time_to_live(ranking_ttl)
                .build(),
            ttl,
            models,
            metrics,
        }
    }

    /// Applies a broadcast to this instance's pages: the scopes named become unreachable, and
    /// the trending ranking is recomputed when trending changed (a post was deleted).
    pub fn invalidate(&self, invalidation: &CacheInvalidation) {
        if invalidation.everything {
            self.pages.invalidate_all();
            self.ranking.invalidate_all();
        }
        for text in &invalidation.page_scopes {
            let Ok(scope) = text.parse::<Scope>() else {
                tracing::warn!(scope = %text, "invalidation names an unknown page scope");
                continue;
            };
            self.pages.invalidate(&scope);
            if scope == Scope::Trending {
                self.ranking.invalidate_all();
            }
        }
    }

    /// Answers one feed request.
    pub async fn serve(&self, request: &FeedRequest) -> FeedReply {
        if !(1..=MAX_LIMIT).contains(&request.limit) || request.offset > MAX_OFFSET {
            return invalid("limit must be 1 to 100 and offset at most 10000");
        }
        let viewer: Option<UserId> = request.viewer_user_id.parse().ok();
        let kind = FeedKind::try_from(request.kind).unwrap_or(FeedKind::Unspecified);
        let (scope, ttl) = match (kind, viewer) {
            (FeedKind::Timeline, Some(v)) => (Scope::Timeline(v), self.ttl.cache_ttl_timeline),
            (FeedKind::Unified, Some(v)) => (Scope::Unified(v), self.ttl.cache_ttl_unified),
            (FeedKind::ForYou, Some(v)) => (Scope::ForYou(v), self.ttl.cache_ttl_unified),
            (FeedKind::Trending, _) => (Scope::Trending, self.ttl.cache_ttl_trending),
            (FeedKind::User, _) => match request.target_user_id.parse() {
                Ok(target) => (Scope::User(target), self.ttl.cache_ttl_user),
                Err(_) => return invalid("target_user_id must be a user id"),
            },
            (FeedKind::Unspecified, _) => return invalid("unknown feed"),
            _ => return invalid("this feed needs a signed-in viewer"),
        };
        let time_ordered = matches!(scope, Scope::Timeline(_) | Scope::User(_));
        let cursor = match (request.cursor.as_str(), time_ordered) {
            ("", _) => None,
            (text, true) => match Cursor::parse(text) {
                Some(cursor) => Some(cursor),
                None => return invalid("cursor is not one this service handed out"),
            },
            (_, false) => {
                return invalid("only the timeline and user feeds take a cursor");
            }
        };
        let (limit, offset) = (request.limit, request.offset);
        // A cursor page is read fresh: it is the page a reader asks for once, after its own
        // previous page, so caching it would only hold memory.
        let skeleton = match cursor {
            Some(cursor) => self.build_after(scope, cursor, limit).await.map(Arc::new),
            // Later pages of a ranked feed come from the order its first page was served in
            // (one Redis read; not page-cached, so a new snapshot shows at once).
            None if snapshotted(scope) && offset > 0 => {
                self.snapshot_page(scope, limit, offset).await.map(Arc::new)
            }
            None => {
                self.pages
                    .get_or_build(&scope, limit, offset, ttl, || {
                        self.build(scope, limit, offset)
                    })
                    .await
            }
        };
        let skeleton = match skeleton {
            Ok(skeleton) => skeleton,
            Err(err) => {
                tracing::warn!(error = %err, %scope, "cannot build a feed page");
                return unavailable();
            }
        };
        let total = async {
            match scope {
                Scope::User(user) => self.total(&keys::user_posts(user)).await,
                _ => Ok(0),
            }
        };
        match tokio::try_join!(self.render(&skeleton, viewer), total) {
            Ok((items, total)) => {
                let next_cursor = match (time_ordered && skeleton.has_more, items.last()) {
                    (true, Some(last)) => last
                        .post
                        .as_ref()
                        .and_then(|p| {
                            Some(Cursor {
                                at_ms: p.created_at_ms,
                                post: p.id.parse().ok()?,
                            })
                        })
                        .map(|c| c.encode())
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                FeedReply {
                    result: Some(rpc::feed_reply::Result::Page(FeedPage {
                        items,
                        has_more: skeleton.has_more,
                        next_cursor,
                        total,
                    })),
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot hydrate a feed page");
                unavailable()
            }
        }
    }

    /// Fills in posts, counts and the viewer's flags; drops posts deleted since the page was
    /// cached.
    async fn render(
        &self,
        skeleton: &PageSkeleton,
        viewer: Option<UserId>,
    ) -> redis::RedisResult<Vec<FeedItem>> {
        let ids: Vec<PostId> = skeleton
            .post_ids
            .iter()
            .filter_map(|p| p.parse().ok())
            .collect();
        let (hydrated, views) = tokio::try_join!(
            self.store.hydrate(&ids),
            self.store.viewer_views(&ids, viewer)
        )?;
        let following = match viewer {
            Some(viewer) => self.store.following(viewer).await?,
            None => Arc::new(HashSet::new()),
        };
        let authors: Vec<UserId> = hydrated.iter().flatten().filter_map(|h| h.author).collect();
        let profiles = self.store.profiles(&authors).await?;
        Ok(hydrated
            .into_iter()
            .zip(views)
            .zip(skeleton.sources.iter())
            .filter_map(|((post, view), source)| {
                let post = post?;
                let author = post.author;
                let profile = author.and_then(|a| profiles.get(&a));
                let mut data = (*post.post).clone();
                // The author's name now, not at posting time (usernames can change).
                if let Some(profile) = profile {
                    data.username.clone_from(&profile.username);
                }
                Some(FeedItem {
                    post: Some(data),
                    counts: Some(post.counts),
                    source: *source,
                    is_following: author.is_some_and(|a| following.contains(&a)),
                    is_own_post: author.is_some() && author == viewer,
                    author_avatar_url: profile.map(|p| p.avatar_url.clone()).unwrap_or_default(),
                    is_liked: view.is_liked,
                    is_reposted: view.is_reposted,
                    // Saving is not built: nobody has saved anything.
                    is_saved: false,
                    reaction_counts: view.reaction_counts,
                })
            })
            .collect())
    }

    /// Builds the skeleton of one page: the `offset..offset+limit` slice of the feed's
    /// candidates, keeping only posts that exist. For snapshotted feeds this is the first
    /// page, which takes a new snapshot.
    async fn build(
        &self,
        scope: Scope,
        limit: u32,
        offset: u32,
    ) -> Result<PageSkeleton, PageError> {
        let need = (offset + limit + 1) as usize;
        let live = if snapshotted(scope) {
            self.take_snapshot(scope, need.max(SNAPSHOT_SIZE)).await?
        } else {
            self.live(scope, need).await?
        };
        Ok(slice(&live, limit, offset))
    }

    /// The first `need` candidates of a feed that still exist, in feed order.
    async fn live(
        &self,
        scope: Scope,
        need: usize,
    ) -> Result<Vec<(PostId, ItemSource)>, PageError> {
        let candidates: Vec<(PostId, ItemSource)> = match scope {
            Scope::Timeline(viewer) => self.timeline(viewer, need).await?,
            Scope::User(user) => tag(
                self.newest(&keys::user_posts(user), need).await?,
                ItemSource::Recent,
            ),
            Scope::Trending => tag(self.trending(need).await?, ItemSource::Trending),
            Scope::ForYou(viewer) => self.for_you(viewer, need).await?,
            Scope::Unified(viewer) => self.unified(viewer, need).await?,
        };
        let ids: Vec<PostId> = candidates.iter().map(|(id, _)| *id).collect();
        let hydrated = self.store.hydrate(&ids).await.map_err(redis_error)?;
        Ok(candidates
            .into_iter()
            .zip(hydrated)
            .filter_map(|(candidate, post)| post.map(|_| candidate))
            .collect())
    }

    /// Ranks the feed afresh and keeps the order for the reader's next pages.
    async fn take_snapshot(
        &self,
        scope: Scope,
        need: usize,
    ) -> Result<Vec<(PostId, ItemSource)>, PageError> {
        let live = self.live(scope, need).await?;
        let record = PageSkeleton {
            post_ids: live.iter().map(|(id, _)| id.to_string()).collect(),
            sources: live.iter().map(|(_, source)| *source as i32).collect(),
            // Whether the feed may hold more than the snapshot.
            has_more: live.len() >= need,
        };
        let mut conn = self.store.redis();
        let _: () = conn
            .set_ex(
                keys::snapshot(&scope),
                record.encode_to_vec(),
                SNAPSHOT_TTL.as_secs(),
            )
            .await
            .map_err(redis_error)?;
        Ok(live)
    }

    /// A later page of a snapshotted feed: a slice of the order its first page was served in,
    /// so posts arriving meanwhile neither repeat items nor push them out of reach. Without a
    /// snapshot (expired, or a first read past page one), or past its end when the feed held
    /// more, a new one is taken.
    async fn snapshot_page(
        &self,
        scope: Scope,
        limit: u32,
        offset: u32,
    ) -> Result<PageSkeleton, PageError> {
        let need = (offset + limit + 1) as usize;
        let mut conn = self.store.redis();
        let stored: Option<Vec<u8>> = conn
            .get(keys::snapshot(&scope))
            .await
            .map_err(redis_error)?;
        let snapshot = stored.and_then(|bytes| PageSkeleton::decode(bytes.as_slice()).ok());
        let live = match snapshot {
            Some(record) if record.post_ids.len() >= need || !record.has_more => record
                .post_ids
                .iter()
                .zip(record.sources.iter())
                .filter_map(|(id, source)| {
                    let source = ItemSource::try_from(*source).unwrap_or(ItemSource::Recent);
                    Some((id.parse().ok()?, source))
                })
                .collect(),
            _ => self.take_snapshot(scope, need.max(SNAPSHOT_SIZE)).await?,
        };
        Ok(slice(&live, limit, offset))
    }

    async fn total(&self, key: &str) -> redis::RedisResult<u64> {
        let mut conn = self.store.redis();
        conn.zcard(key).await
    }

    /// The skeleton of the `limit` items right after `cursor` in a time-ordered feed.
    async fn build_after(
        &self,
        scope: Scope,
        cursor: Cursor,
        limit: u32,
    ) -> Result<PageSkeleton, PageError> {
        let (sets, source) = match scope {
            Scope::User(user) => (vec![keys::user_posts(user)], ItemSource::Recent),
            Scope::Timeline(viewer) => {
                let mut conn = self.store.redis();
                let big: Vec<String> = conn
                    .sinter(&[keys::following(viewer), keys::BIG_AUTHORS.to_owned()])
                    .await
                    .map_err(redis_error)?;
                let mut sets = vec![keys::timeline(viewer)];
                sets.extend(
                    big.iter()
                        .filter_map(|a| a.parse::<UserId>().ok())
                        .map(keys::user_posts),
                );
                (sets, ItemSource::Following)
            }
            _ => return Err(PageError::Unavailable("not a time-ordered feed".into())),
        };
        // Deleted posts leave the sorted sets when applied; a few spare entries cover the ones
        // deleted a moment ago.
        let need = limit as usize + 1 + CURSOR_SPARE;
        let entries = self.entries_after(&sets, cursor, need).await?;
        let hydrated = self.store.hydrate(&entries).await.map_err(redis_error)?;
        let live: Vec<PostId> = entries
            .into_iter()
            .zip(hydrated)
            .filter_map(|(id, post)| post.map(|_| id))
            .collect();
        let has_more = live.len() > limit as usize;
        let page: Vec<PostId> = live.into_iter().take(limit as usize).collect();
        Ok(PageSkeleton {
            sources: vec![source as i32; page.len()],
            post_ids: page.iter().map(|id| id.to_string()).collect(),
            has_more,
        })
    }

    /// The first `n` entries of the union of `sets` strictly after `cursor`, in feed order.
    async fn entries_after(
        &self,
        sets: &[String],
        cursor: Cursor,
        n: usize,
    ) -> Result<Vec<PostId>, PageError> {
        let mut pipe = redis::pipe();
        for set in sets {
            // Same millisecond as the cursor (rare, few), then strictly older.
            pipe.cmd("ZREVRANGEBYSCORE")
                .arg(set)
                .arg(cursor.at_ms)
                .arg(cursor.at_ms)
                .arg("WITHSCORES");
            pipe.cmd("ZREVRANGEBYSCORE")
                .arg(set)
                .arg(format!("({}", cursor.at_ms))
                .arg("-inf")
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(0)
                .arg(n);
        }
        let mut conn = self.store.redis();
        let lists: Vec<Vec<(String, f64)>> =
            pipe.query_async(&mut conn).await.map_err(redis_error)?;
        let mut entries: Vec<(String, f64)> = lists
            .into_iter()
            .flatten()
            .filter(|(member, score)| cursor.is_before(member, *score))
            .collect();
        entries.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
        entries.dedup_by(|a, b| a.0 == b.0);
        Ok(entries
            .into_iter()
            .filter_map(|(id, _)| id.parse().ok())
            .take(n)
            .collect())
    }

    async fn newest(&self, key: &str, n: usize) -> Result<Vec<PostId>, PageError> {
        let mut conn = self.store.redis();
        let ids: Vec<String> = conn
            .zrevrange(key, 0, n as isize - 1)
            .await
            .map_err(redis_error)?;
        Ok(ids.iter().filter_map(|id| id.parse().ok()).collect())
    }

    /// The viewer's timeline: fanned-out entries merged with posts of followed big authors,
    /// newest first.
    async fn timeline(
        &self,
        viewer: UserId,
        need: usize,
    ) -> Result<Vec<(PostId, ItemSource)>, PageError> {
        let mut conn = self.store.redis();
        let (mut entries, big): (Vec<(String, f64)>, Vec<String>) = redis::pipe()
            .zrevrange_withscores(keys::timeline(viewer), 0, need as isize - 1)
            .sinter(&[keys::following(viewer), keys::BIG_AUTHORS.to_owned()])
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        if !big.is_empty() {
            let mut pipe = redis::pipe();
            for author in big.iter().filter_map(|a| a.parse::<UserId>().ok()) {
                pipe.zrevrange_withscores(keys::user_posts(author), 0, need as isize - 1);
            }
            let pulled: Vec<Vec<(String, f64)>> =
                pipe.query_async(&mut conn).await.map_err(redis_error)?;
            entries.extend(pulled.into_iter().flatten());
            entries.sort_by(|a, b| b.1.total_cmp(&a.1));
        }
        let mut seen = HashSet::new();
        Ok(entries
            .into_iter()
            .filter_map(|(id, _)| id.parse::<PostId>().ok())
            .filter(|id| seen.insert(*id))
            .take(need)
            .map(|id| (id, ItemSource::Following))
            .collect())
    }

    /// The trending ranking's first `need` posts.
    async fn trending(&self, need: usize) -> Result<Vec<PostId>, PageError> {
        let ranking = self
            .ranking
            .try_get_with((), self.rank_trending())
            .await
            .map_err(|err| (*err).clone())?;
        Ok(ranking.iter().take(need).copied().collect())
    }

    /// Scores the newest posts of the trending window and keeps the best.
    async fn rank_trending(&self) -> Result<Arc<Vec<PostId>>, PageError> {
        let now = sidechain_events::now_ms();
        let window_start =
            now - i64::try_from(self.models.trending_window.as_millis()).unwrap_or(i64::MAX);
        let mut conn = self.store.redis();
        let candidates: Vec<(String, f64)> = redis::cmd("ZREVRANGEBYSCORE")
            .arg(keys::RECENT)
            .arg("+inf")
            .arg(window_start)
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(self.models.trending_candidates)
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        let ids: Vec<PostId> = candidates
            .iter()
            .filter_map(|(id, _)| id.parse().ok())
            .collect();
        let hydrated = self.store.hydrate(&ids).await.map_err(redis_error)?;
        let mut scored: Vec<(f64, PostId)> = ids
            .into_iter()
            .zip(hydrated)
            .filter_map(|(id, post)| {
                let post = post?;
                let age_ms = u64::try_from(now - post.post.created_at_ms).unwrap_or(0);
                Some((
                    ranking::trending_score(&post.counts, Duration::from_millis(age_ms)),
                    id,
                ))
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
        Ok(Arc::new(
            scored
                .into_iter()
                .take(TRENDING_SIZE)
                .map(|(_, id)| id)
                .collect(),
        ))
    }

    /// Gorse's recommendations, or `None` when Gorse is reported unhealthy or the call fails
    /// (the caller falls back to trending).
    async fn recommendations(
        &self,
        viewer: UserId,
        need: usize,
        feed: Feed,
    ) -> Option<Vec<PostId>> {
        if self
            .gorse_status
            .latest()
            .is_some_and(|status| !status.healthy)
        {
            self.metrics.gorse_fallback(feed.as_str(), "unhealthy");
            return None;
        }
        match self.gorse.recommend(&viewer.to_string(), need, 0).await {
            // Follow items (`user:<id>`) are not posts and drop out here.
            Ok(items) => Some(items.iter().filter_map(|i| i.parse().ok()).collect()),
            Err(err) => {
                tracing::debug!(error = %err, "Gorse recommendations unavailable; using trending");
                self.metrics.gorse_fallback(feed.as_str(), "error");
                None
            }
        }
    }

    async fn for_you(
        &self,
        viewer: UserId,
        need: usize,
    ) -> Result<Vec<(PostId, ItemSource)>, PageError> {
        Ok(
            match self.recommendations(viewer, need, Feed::ForYou).await {
                Some(ids) => tag(ids, ItemSource::Gorse),
                None => tag(self.trending(need).await?, ItemSource::Trending),
            },
        )
    }

    async fn unified(
        &self,
        viewer: UserId,
        need: usize,
    ) -> Result<Vec<(PostId, ItemSource)>, PageError> {
        // The five sources are independent: ask them at once, so a rebuild costs the slowest
        // of them (usually the Gorse call) rather than their sum.
        let own_posts = keys::user_posts(viewer);
        let (following, trending, recent, recommended, own) = tokio::try_join!(
            self.timeline(viewer, need),
            self.trending(need),
            self.newest(keys::RECENT, need),
            async { Ok(self.recommendations(viewer, need, Feed::Unified).await) },
            self.newest(&own_posts, 1_000),
        )?;
        let following: Vec<PostId> = following.into_iter().map(|(id, _)| id).collect();
        // Without Gorse its share goes to trending, labelled as such.
        let (gorse_source, gorse_ids) = match recommended {
            Some(ids) => (ItemSource::Gorse, ids),
            None => (ItemSource::Trending, trending.clone()),
        };
        let own: HashSet<PostId> = own.into_iter().collect();
        let lists = ranking::UNIFIED_WEIGHTS.map(|(source, weight)| {
            let ids = match source {
                ItemSource::Following => following.clone(),
                ItemSource::Gorse => gorse_ids.clone(),
                ItemSource::Trending => trending.clone(),
                _ => recent.clone(),
            };
            let label = if source == ItemSource::Gorse {
                gorse_source
            } else {
                source
            };
            (label, weight, ids)
        });
        Ok(ranking::mix(lists.into(), |id| own.contains(id), need))
    }
}

/// Feeds ranked per viewer whose order is kept between pages ([`Feeds::snapshot_page`]).
fn snapshotted(scope: Scope) -> bool {
    matches!(scope, Scope::Unified(_) | Scope::ForYou(_))
}

/// The `offset..offset+limit` page of `live`.
fn slice(live: &[(PostId, ItemSource)], limit: u32, offset: u32) -> PageSkeleton {
    let page: Vec<_> = live
        .iter()
        .skip(offset as usize)
        .take(limit as usize)
        .collect();
    PageSkeleton {
        post_ids: page.iter().map(|(id, _)| id.to_string()).collect(),
        sources: page.iter().map(|(_, source)| *source as i32).collect(),
        has_more: live.len() > (offset + limit) as usize,
    }
}

fn tag(ids: Vec<PostId>, source: ItemSource) -> Vec<(PostId, ItemSource)> {
    ids.into_iter().map(|id| (id, source)).collect()
}
