//! Reading the read models, with in-process copies that the applier's broadcasts keep fresh:
//! post data (immutable until deleted), post counts, and who each user follows; and public
//! profiles (authors' names and avatars), kept for a short TTL only.
//!
//! A warm feed request reads nothing from Redis; a cold one reads the missing posts' hashes in
//! one pipelined round trip.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use prost::Message as _;
use redis::AsyncCommands as _;
use sidechain_events::rpc::{CacheInvalidation, Post, PostCounts};
use sidechain_events::{PostId, UserId};
use sidechain_infra::redis::RedisConn;

use crate::counts::Count;
use crate::keys;
use crate::metrics::CacheMetrics;

/// How long a post's counts are trusted in memory without an invalidation.
const COUNTS_TTL: Duration = Duration::from_secs(60);
/// How long a post's data is kept in memory (it only changes when deleted, which is broadcast).
const POST_TTL: Duration = Duration::from_secs(600);
/// How long a follow set is trusted in memory without an invalidation.
const FOLLOWING_TTL: Duration = Duration::from_secs(60);
/// How long a public profile is kept in memory. Profile edits are not broadcast (they are rare
/// and not worth a field in every invalidation), so a new avatar or username reaches feeds
/// within this time.
const PROFILE_TTL: Duration = Duration::from_secs(30);

/// The public part of a user's profile, as feeds and lists show it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicProfile {
    /// Current username.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// Profile text.
    pub bio: String,
    /// Picture URL, or empty.
    pub avatar_url: String,
}

/// The fields of a profile hash, in [`PublicProfile`] order.
const PROFILE_FIELDS: [&str; 4] = ["username", "display_name", "bio", "avatar_url"];

/// A post ready to serve.
#[derive(Debug, Clone)]
pub struct Hydrated {
    /// Its data.
    pub post: Arc<Post>,
    /// Its counts now.
    pub counts: PostCounts,
    /// Its author.
    pub author: Option<UserId>,
}

/// What a post looks like to one viewer beyond its counts: their flags and the reactions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewerView {
    /// The viewer likes the post.
    pub is_liked: bool,
    /// The viewer reposted it.
    pub is_reposted: bool,
    /// Users who reacted with each emoji.
    pub reaction_counts: HashMap<String, u64>,
}

/// The read side.
#[derive(Debug, Clone)]
pub struct Store {
    redis: RedisConn,
    posts: Cache<PostId, Arc<Post>>,
    counts: Cache<PostId, PostCounts>,
    following: Cache<UserId, Arc<HashSet<UserId>>>,
    profiles: Cache<UserId, Arc<PublicProfile>>,
    metrics: CacheMetrics,
}

/// The fields of a post hash read to hydrate it: data, deletion mark, then every count.
const FIELDS: [&str; 2 + Count::ALL.len()] = {
    let mut fields = ["data", "deleted", "", "", "", "", "", ""];
    let mut i = 0;
    while i < Count::ALL.len() {
        fields[2 + i] = Count::ALL[i].field();
        i += 1;
    }
    fields
};

impl Store {
    /// A store over `redis` keeping up to `entries` of each kind in memory.
    pub fn new(redis: RedisConn, entries: u64, metrics: CacheMetrics) -> Self {
        Self {
            redis,
            posts: Cache::builder()
                .max_capacity(entries)
                .time_to_live(POST_TTL)
                .build(),
            counts: Cache::builder()
                .max_capacity(entries)
                .time_to_live(COUNTS_TTL)
                .build(),
            following: Cache::builder()
                .max_capacity(entries)
                .time_to_live(FOLLOWING_TTL)
                .build(),
            profiles: Cache::builder()
                .max_capacity(entries)
                .time_to_live(PROFILE_TTL)
                .build(),
            metrics,
        }
    }

    /// The Redis connection (for builders).
    pub fn redis(&self) -> RedisConn {
        self.redis.clone()
    }

    /// The posts, in order; `None` for posts that do not exist or were deleted.
    pub async fn hydrate(&self, ids: &[PostId]) -> redis::RedisResult<Vec<Option<Hydrated>>> {
        let mut out: Vec<Option<Hydrated>> = Vec::with_capacity(ids.len());
        let mut missing: Vec<(usize, PostId)> = Vec::new();
        for (at, id) in ids.iter().enumerate() {
            match (self.posts.get(id), self.counts.get(id)) {
                (Some(post), Some(counts)) => {
                    self.metrics.lookup("post", true);
                    out.push(Some(Hydrated {
                        author: post.user_id.parse().ok(),
                        post,
                        counts,
                    }));
                }
                _ => {
                    self.metrics.lookup("post", false);
                    out.push(None);
                    missing.push((at, *id));
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let mut pipe = redis::pipe();
        for (_, id) in &missing {
            pipe.cmd("HMGET").arg(keys::post(*id)).arg(&FIELDS[..]);
        }
        let mut conn = self.redis.clone();
        let rows: Vec<Vec<Option<Vec<u8>>>> = pipe.query_async(&mut conn).await?;
        for ((at, id), row) in missing.into_iter().zip(rows) {
            out[at] = self.remember(id, &row);
        }
        Ok(out)
    }

    fn remember(&self, id: PostId, row: &[Option<Vec<u8>>]) -> Option<Hydrated> {
        let field = |i: usize| row.get(i).and_then(|v| v.as_deref());
        let number = |i: usize| {
            field(i)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.parse::<i64>().ok())
                .map_or(0, |n| n.max(0) as u64)
        };
        if field(1) == Some(b"1".as_slice()) {
            self.forget(id);
            return None;
        }
        let post = Arc::new(Post::decode(field(0)?).ok()?);
        let mut counts = PostCounts::default();
        for (i, count) in Count::ALL.into_iter().enumerate() {
            *count.slot(&mut counts) = number(2 + i);
        }
        self.posts.insert(id, post.clone());
        self.counts.insert(id, counts);
        Some(Hydrated {
            author: post.user_id.parse().ok(),
            post,
            counts,
        })
    }

    fn forget(&self, id: PostId) {
        self.posts.invalidate(&id);
        self.counts.invalidate(&id);
    }

    /// The viewer's flags (read, never cached in memory: a like must show at once to its
    /// author) and the reaction counts of `ids`, in order, in two pipelined round trips sent at
    /// once.
    pub async fn viewer_views(
        &self,
        ids: &[PostId],
        viewer: Option<UserId>,
    ) -> redis::RedisResult<Vec<ViewerView>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut reactions = redis::pipe();
        for id in ids {
            reactions.hgetall(keys::post_reaction_counts(*id));
        }
        let mut flags = redis::pipe();
        if let Some(viewer) = viewer {
            let viewer = viewer.to_string();
            for id in ids {
                flags
                    .sismember(keys::post_likes(*id), &viewer)
                    .sismember(keys::post_reposts(*id), &viewer);
            }
        }
        let (mut a, mut b) = (self.redis.clone(), self.redis.clone());
        let (reactions, flags): (Vec<BTreeMap<String, i64>>, Vec<bool>) =
            tokio::try_join!(reactions.query_async(&mut a), async {
                if viewer.is_some() {
                    flags.query_async(&mut b).await
                } else {
                    Ok(Vec::new())
                }
            })?;
        Ok(reactions
            .into_iter()
            .enumerate()
            .map(|(i, counts)| ViewerView {
                is_liked: flags.get(2 * i).copied().unwrap_or(false),
                is_reposted: flags.get(2 * i + 1).copied().unwrap_or(false),
                reaction_counts: counts
                    .into_iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(emoji, n)| (emoji, n as u64))
                    .collect(),
            })
            .collect())
    }

    /// Whom `user` follows.
    pub async fn following(&self, user: UserId) -> redis::RedisResult<Arc<HashSet<UserId>>> {
        if let Some(set) = self.following.get(&user) {
            self.metrics.lookup("following", true);
            return Ok(set);
        }
        self.metrics.lookup("following", false);
        let mut conn = self.redis.clone();
        let members: Vec<String> = conn.smembers(keys::following(user)).await?;
        let set: Arc<HashSet<UserId>> =
            Arc::new(members.iter().filter_map(|m| m.parse().ok()).collect());
        self.following.insert(user, set.clone());
        Ok(set)
    }

    /// The public profiles of `users` that the read models hold (users without one are left
    /// out: registered before profiles were derived and not replayed yet).
    pub async fn profiles(
        &self,
        users: &[UserId],
    ) -> redis::RedisResult<HashMap<UserId, Arc<PublicProfile>>> {
        let mut found = HashMap::with_capacity(users.len());
        let mut missing: Vec<UserId> = Vec::new();
        for user in users {
            if found.contains_key(user) || missing.contains(user) {
                continue;
            }
            match self.profiles.get(user) {
                Some(profile) => {
                    self.metrics.lookup("profile", true);
                    found.insert(*user, profile);
                }
                None => {
                    self.metrics.lookup("profile", false);
                    missing.push(*user);
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let mut pipe = redis::pipe();
        for user in &missing {
            pipe.cmd("HMGET")
                .arg(keys::profile(*user))
                .arg(&PROFILE_FIELDS[..]);
        }
        let mut conn = self.redis.clone();
        let rows: Vec<Vec<Option<String>>> = pipe.query_async(&mut conn).await?;
        for (user, row) in missing.into_iter().zip(rows) {
            let mut fields = row.into_iter().map(Option::unwrap_or_default);
            let mut next = || fields.next().unwrap_or_default();
            let profile = PublicProfile {
                username: next(),
                display_name: next(),
                bio: next(),
                avatar_url: next(),
            };
            if profile.username.is_empty() {
                continue;
            }
            let profile = Arc::new(profile);
            self.profiles.insert(user, profile.clone());
            found.insert(user, profile);
        }
        Ok(found)
    }

    /// Applies a broadcast: drops changed posts and follow sets.
    pub fn invalidate(&self, invalidation: &CacheInvalidation) {
        if invalidation.everything {
            self.posts.invalidate_all();
            self.counts.invalidate_all();
            self.following.invalidate_all();
            self.profiles.invalidate_all();
            return;
        }
        for id in invalidation
            .post_ids
            .iter()
            .filter_map(|p| p.parse::<PostId>().ok())
        {
            // Data stays (it is immutable); counts and deletion status are re-read.
            self.counts.invalidate(&id);
        }
        for user in invalidation
            .following_of
            .iter()
            .filter_map(|u| u.parse::<UserId>().ok())
        {
            self.following.invalidate(&user);
        }
    }
}
