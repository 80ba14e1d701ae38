//! Point lookups for the edge: does a post or comment exist (`lookup.post`, `lookup.comment`),
//! and a page of a post's comments (`comments.list`); for the feedback service, posts by id
//! (`posts.get`), to write the Gorse items of posts whose `post_created` never reached Gorse.
//!
//! Read-your-writes: a post created a moment ago may not be applied yet. On a miss the lookup
//! waits (up to [`BARRIER_TIMEOUT`]) until the read models include every event the stream held
//! when the lookup arrived, then looks again.

use std::time::Duration;

use prost::Message as _;
use redis::AsyncCommands as _;
use sidechain_events::rpc::{
    CommentItem, CommentsReply, CommentsRequest, ErrorCode, LookupReply, LookupRequest, Post,
    PostCounts, PostsReply, PostsRequest, RpcError, lookup_request::Target,
};
use sidechain_events::subjects::{EVENTS_STREAM, POSTS_GET_MAX_IDS};
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
    pub(crate) async fn catch_up(&self) -> bool {
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

    /// Answers `posts.get`: the posts the read models hold and the ids known to be deleted.
    /// No read-your-writes barrier: the caller asks again later for what is not there yet.
    pub async fn posts(&self, request: &PostsRequest) -> PostsReply {
        if request.post_ids.len() > POSTS_GET_MAX_IDS {
            return PostsReply {
                error: Some(RpcError {
                    code: ErrorCode::InvalidArgument as i32,
                    message: format!("at most {POSTS_GET_MAX_IDS} post ids per request"),
                }),
                ..Default::default()
            };
        }
        let ids: Vec<PostId> = request
            .post_ids
            .iter()
            .filter_map(|id| id.parse().ok())
            .collect();
        match self.posts_by_id(&ids).await {
            Ok(reply) => reply,
            Err(err) => {
                tracing::warn!(error = %err, "posts lookup failed");
                PostsReply {
                    error: Some(unavailable()),
                    ..Default::default()
                }
            }
        }
    }

    async fn posts_by_id(&self, ids: &[PostId]) -> redis::RedisResult<PostsReply> {
        let mut reply = PostsReply::default();
        if ids.is_empty() {
            return Ok(reply);
        }
        // One HMGET per post (each post hash is in its own cluster slot), in one round trip.
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HMGET")
                .arg(keys::post(*id))
                .arg(&["data", "deleted"]);
        }
        let mut conn = self.redis.clone();
        let rows: Vec<(Option<Vec<u8>>, Option<String>)> = pipe.query_async(&mut conn).await?;
        for (id, (data, deleted)) in ids.iter().zip(rows) {
            if deleted.as_deref() == Some("1") {
                reply.deleted_post_ids.push(id.to_string());
            } else if let Some(post) = data.and_then(|bytes| Post::decode(bytes.as_slice()).ok()) {
                reply.posts.push(post);
            }
        }
        Ok(reply)
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
        let mut comments: Vec<CommentItem> = rows
            .into_iter()
            .flatten()
            .filter_map(|bytes| CommentItem::decode(bytes.as_slice()).ok())
            .collect();
        with_authors(&mut conn, &mut comments).await?;
        Ok(CommentsReply {
            comments,
            has_more,
            error: None,
            total_count,
        })
    }
}

/// Fills in each comment's author as they are now: username and avatar from the profile read
/// model (a comment stores the name its author had when writing it).
async fn with_authors(
    conn: &mut RedisConn,
    comments: &mut [CommentItem],
) -> redis::RedisResult<()> {
    if comments.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for comment in comments.iter() {
        let user = comment.user_id.parse::<sidechain_events::UserId>().ok();
        pipe.cmd("HMGET")
            .arg(user.map_or_else(|| "profile:{}".to_owned(), keys::profile))
            .arg(&["username", "avatar_url"]);
    }
    let rows: Vec<(Option<String>, Option<String>)> = pipe.query_async(conn).await?;
    for (comment, (username, avatar_url)) in comments.iter_mut().zip(rows) {
        if let Some(username) = username.filter(|u| !u.is_empty()) {
            comment.username = username;
        }
        comment.user_avatar_url = avatar_url.unwrap_or_default();
    }
    Ok(())
}
