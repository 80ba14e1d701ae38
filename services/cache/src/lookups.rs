//! Point lookups for the edge: does a post or comment exist (`lookup.post`, `lookup.comment`),
//! and a page of a post's comments (`comments.list`).
//!
//! Read-your-writes: a post created a moment ago may not be applied yet. On a miss the lookup
//! waits (up to [`BARRIER_TIMEOUT`]) until the read models include every event the stream held
//! when the lookup arrived, then looks again.

use std::time::Duration;

use prost::Message as _;
use redis::AsyncCommands as _;
use sidechain_events::rpc::{
    CommentItem, CommentsReply, CommentsRequest, ErrorCode, LookupReply, LookupRequest, Post,
    PostCounts, RpcError, lookup_request::Target,
};
use sidechain_events::subjects::EVENTS_STREAM;
use sidechain_events::{CommentId, PostId, UserId};
use sidechain_infra::redis::RedisConn;
use tokio::sync::watch;

use crate::counts::Count;
use crate::keys;

/// Longest wait for the read models to catch up on a miss.
pub const BARRIER_TIMEOUT: Duration = Duration::from_millis(500);

/// Answers lookups.
#[derive(Debug, Clone)]
pub struct Lookups {
    redis: RedisConn,
    js: async_nats::jetstream::Context,
    applied: watch::Receiver<u64>,
}

fn unavailable() -> RpcError {
    RpcError {
        code: ErrorCode::Unavailable as i32,
        message: "lookups are temporarily unavailable".to_owned(),
    }
}

impl Lookups {
    /// Lookups over `redis`; `applied` follows the applied stream sequence.
    pub fn new(
        redis: RedisConn,
        js: async_nats::jetstream::Context,
        applied: watch::Receiver<u64>,
    ) -> Self {
        Self { redis, js, applied }
    }

    /// Answers `lookup.post` / `lookup.comment`.
    pub async fn lookup(&self, request: &LookupRequest) -> LookupReply {
        let result = match &request.target {
            Some(Target::PostId(id)) => match id.parse::<PostId>() {
                Ok(post) => {
                    let viewer = request.viewer_user_id.parse::<UserId>().ok();
                    return self.post_detail(post, viewer).await;
                }
                Err(_) => Ok(None),
            },
            Some(Target::CommentId(id)) => match id.parse::<CommentId>() {
                Ok(comment) => self.with_barrier(|| self.comment(comment)).await,
                Err(_) => Ok(None),
            },
            None => Ok(None),
        };
        match result {
            Ok(Some((owner, post))) => LookupReply {
                found: true,
                owner_user_id: owner,
                post_id: post,
                ..Default::default()
            },
            Ok(None) => LookupReply::default(),
            Err(err) => {
                tracing::warn!(error = %err, "lookup failed");
                LookupReply {
                    error: Some(unavailable()),
                    ..Default::default()
                }
            }
        }
    }

    /// A post lookup: the post, its counts and the viewer's like.
    async fn post_detail(&self, post: PostId, viewer: Option<UserId>) -> LookupReply {
        match self.with_barrier(|| self.post(post, viewer)).await {
            Ok(Some(found)) => found,
            Ok(None) => LookupReply::default(),
            Err(err) => {
                tracing::warn!(error = %err, "post lookup failed");
                LookupReply {
                    error: Some(unavailable()),
                    ..Default::default()
                }
            }
        }
    }

    async fn with_barrier<F, Fut, T>(&self, look: F) -> redis::RedisResult<Option<T>>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = redis::RedisResult<Option<T>>>,
    {
        if let Some(found) = look().await? {
            return Ok(Some(found));
        }
        if self.catch_up().await {
            return look().await;
        }
        Ok(None)
    }

    /// Waits until the read models include every event stored now. `false` if they already
    /// did (no point looking again) or could not within the timeout.
    async fn catch_up(&self) -> bool {
        let Ok(mut stream) = self.js.get_stream(EVENTS_STREAM).await else {
            return false;
        };
        let Ok(info) = stream.info().await else {
            return false;
        };
        let target = info.state.last_sequence;
        let mut applied = self.applied.clone();
        if *applied.borrow() >= target {
            return false;
        }
        let mut conn = self.redis.clone();
        let stored: Option<u64> = conn.get(keys::APPLIED_SEQ).await.unwrap_or(None);
        if stored.is_some_and(|s| s >= target) {
            return true;
        }
        tokio::time::timeout(BARRIER_TIMEOUT, applied.wait_for(|seq| *seq >= target))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    async fn post(
        &self,
        post: PostId,
        viewer: Option<UserId>,
    ) -> redis::RedisResult<Option<LookupReply>> {
        let mut conn = self.redis.clone();
        let fields: Vec<&str> = ["data", "deleted"]
            .into_iter()
            .chain(Count::ALL.iter().map(|c| c.field()))
            .collect();
        let viewer = viewer.map(|v| v.to_string()).unwrap_or_default();
        let (row, liked): (Vec<Option<Vec<u8>>>, bool) = redis::pipe()
            .cmd("HMGET")
            .arg(keys::post(post))
            .arg(&fields)
            .sismember(keys::post_likes(post), &viewer)
            .query_async(&mut conn)
            .await?;
        let field = |i: usize| row.get(i).and_then(|v| v.as_deref());
        if field(1) == Some(b"1".as_slice()) {
            return Ok(None);
        }
        let Some(data) = field(0).and_then(|bytes| Post::decode(bytes).ok()) else {
            return Ok(None);
        };
        let mut counts = PostCounts::default();
        for (i, count) in Count::ALL.into_iter().enumerate() {
            *count.slot(&mut counts) = field(2 + i)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.parse::<i64>().ok())
                .map_or(0, |n| n.max(0) as u64);
        }
        Ok(Some(LookupReply {
            found: true,
            owner_user_id: data.user_id.clone(),
            post_id: data.id.clone(),
            error: None,
            post: Some(data),
            counts: Some(counts),
            viewer_liked: !viewer.is_empty() && liked,
        }))
    }

    async fn comment(&self, comment: CommentId) -> redis::RedisResult<Option<(String, String)>> {
        let mut conn = self.redis.clone();
        let (post, user): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(keys::comment(comment))
            .arg(&["post", "user"])
            .query_async(&mut conn)
            .await?;
        Ok(post.zip(user).map(|(post, user)| (user, post)))
    }

    /// Answers `comments.list`: oldest first.
    pub async fn comments(&self, request: &CommentsRequest) -> CommentsReply {
        let Ok(post) = request.post_id.parse::<PostId>() else {
            return CommentsReply::default();
        };
        match self
            .comments_page(post, request.limit.clamp(1, 100), request.offset)
            .await
        {
            Ok(reply) => reply,
            Err(err) => {
                tracing::warn!(error = %err, "comments lookup failed");
                CommentsReply {
                    error: Some(unavailable()),
                    ..Default::default()
                }
            }
        }
    }

    async fn comments_page(
        &self,
        post: PostId,
        limit: u32,
        offset: u32,
    ) -> redis::RedisResult<CommentsReply> {
        let mut conn = self.redis.clone();
        let start = offset as isize;
        let (ids, total_count): (Vec<String>, u64) = redis::pipe()
            .zrange(keys::post_comments(post), start, start + limit as isize)
            .zcard(keys::post_comments(post))
            .query_async(&mut conn)
            .await?;
        let has_more = ids.len() > limit as usize;
        let ids: Vec<String> = ids.into_iter().take(limit as usize).collect();
        if ids.is_empty() {
            return Ok(CommentsReply {
                has_more,
                total_count,
                ..Default::default()
            });
        }
        let rows: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
            .arg(keys::post_comment_data(post))
            .arg(&ids)
            .query_async(&mut conn)
            .await?;
        Ok(CommentsReply {
            comments: rows
                .into_iter()
                .flatten()
                .filter_map(|bytes| CommentItem::decode(bytes.as_slice()).ok())
                .collect(),
            has_more,
            error: None,
            total_count,
        })
    }
}
