//! Requests from the edge to the cache service over NATS request/reply: feed pages, comment
//! lists, post/comment lookups and session checks. Failures are [`CacheError`]s; the HTTP layer
//! answers an unreachable cache service with 503 and `Retry-After` (the read side is down,
//! nothing was written).

use std::time::{Duration, Instant};

use async_nats::Client;
use moka::future::Cache;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use sidechain_events::rpc::{
    self, CommentsReply, CommentsRequest, ErrorCode, FeedKind, FeedPage, FeedReply, FeedRequest,
    LookupReply, LookupRequest, Post, PostCounts, ProfileReply, ProfileRequest, RpcError,
    SessionReply, SessionRequest, UserListReply, UserListRequest, lookup_request::Target,
};
use sidechain_events::{CommentId, PostId, UserId, subjects};
use sidechain_infra::nats::{self, RequestError};

use crate::page::Page;

/// How long the edge remembers that a post exists (saves a lookup per like). A post deleted in
/// the meantime may still receive interactions for this long; consumers ignore them.
const KNOWN_POST_TTL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    subject: &'static str,
    outcome: &'static str,
}

/// Client of the cache service.
#[derive(Debug, Clone)]
pub struct CacheClient {
    nats: Client,
    timeout: Duration,
    known_posts: Cache<PostId, UserId>,
    durations: Family<RequestLabels, Histogram>,
}

/// Why the cache service gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// No instance answered in time: retry later.
    #[error("cache service unavailable: {0}")]
    Unavailable(#[source] RequestError),
    /// The cache service answered that it cannot serve the request now (Redis down, …).
    #[error("cache service could not answer: {0}")]
    Degraded(String),
    /// The requested thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The cache service refused the request's arguments.
    #[error("{0}")]
    InvalidArgument(String),
    /// The reply could not be read: a bug on one side of the contract.
    #[error("unreadable reply on {subject}: {reason}")]
    BadReply {
        /// The request subject.
        subject: String,
        /// What was wrong with it.
        reason: String,
    },
}

/// A post with its counts now, as one viewer sees it.
#[derive(Debug, Clone)]
pub struct PostDetail {
    /// The post.
    pub post: Post,
    /// Its counts.
    pub counts: PostCounts,
    /// Whether the viewer likes it.
    pub viewer_liked: bool,
}

/// Who owns a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostOwner(pub UserId);

/// Where a comment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommentLocation {
    /// The post it belongs to.
    pub post_id: PostId,
}

impl CacheClient {
    /// A client waiting at most `timeout` per request; registers its latency histogram.
    pub fn new(nats: Client, timeout: Duration, registry: &mut Registry) -> Self {
        let durations = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(sidechain_telemetry::metrics::latency_buckets())
        });
        registry.register_with_unit(
            "nats_request_duration",
            "Time for the cache service to answer a request, by subject and outcome",
            Unit::Seconds,
            durations.clone(),
        );
        Self {
            nats,
            timeout,
            known_posts: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(KNOWN_POST_TTL)
                .build(),
            durations,
        }
    }

    async fn ask<Req: prost::Message, Rep: prost::Message + Default>(
        &self,
        subject: &'static str,
        full_subject: &str,
        request: &Req,
    ) -> Result<Rep, RequestError> {
        let started = Instant::now();
        let result = nats::request(&self.nats, full_subject, request, self.timeout).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(RequestError::NoResponders(_)) => "no_responders",
            Err(RequestError::TimedOut(_)) => "timeout",
            Err(RequestError::BadReply { .. }) => "bad_reply",
        };
        self.durations
            .get_or_create(&RequestLabels { subject, outcome })
            .observe(started.elapsed().as_secs_f64());
        result
    }

    /// A page of a feed.
    pub async fn feed(
        &self,
        kind: FeedKind,
        viewer: Option<UserId>,
        target: Option<UserId>,
        page: Page,
        cursor: Option<&str>,
    ) -> Result<FeedPage, CacheError> {
        let request = FeedRequest {
            kind: kind as i32,
            viewer_user_id: viewer.map(|v| v.to_string()).unwrap_or_default(),
            target_user_id: target.map(|t| t.to_string()).unwrap_or_default(),
            limit: page.limit,
            offset: page.offset,
            cursor: cursor.unwrap_or_default().to_owned(),
        };
        let reply: FeedReply = self
            .ask("feed", &subjects::feed_subject(kind), &request)
            .await
            .map_err(unavailable)?;
        match reply.result {
            Some(rpc::feed_reply::Result::Page(page)) => Ok(page),
            Some(rpc::feed_reply::Result::Error(err)) => Err(rpc_error(err)),
            None => Err(bad_reply("feed")),
        }
    }

    /// Whether the post exists, and who owns it (`None`: no such post, or deleted).
    pub async fn post_owner(&self, post_id: PostId) -> Result<Option<PostOwner>, CacheError> {
        if let Some(owner) = self.known_posts.get(&post_id).await {
            return Ok(Some(PostOwner(owner)));
        }
        let reply: LookupReply = self
            .ask(
                "lookup.post",
                subjects::LOOKUP_POST,
                &LookupRequest {
                    target: Some(Target::PostId(post_id.to_string())),
                    ..Default::default()
                },
            )
            .await
            .map_err(unavailable)?;
        if let Some(err) = reply.error {
            return Err(rpc_error(err));
        }
        if !reply.found {
            return Ok(None);
        }
        let owner: UserId = reply
            .owner_user_id
            .parse()
            .map_err(|_| bad_reply("lookup.post"))?;
        self.known_posts.insert(post_id, owner).await;
        Ok(Some(PostOwner(owner)))
    }

    /// The post as it is now: its data, counts and whether `viewer` likes it (`None`: no such
    /// post, or deleted). Always asks the cache service: counts change.
    pub async fn post_detail(
        &self,
        post_id: PostId,
        viewer: Option<UserId>,
    ) -> Result<Option<PostDetail>, CacheError> {
        let reply: LookupReply = self
            .ask(
                "lookup.post",
                subjects::LOOKUP_POST,
                &LookupRequest {
                    target: Some(Target::PostId(post_id.to_string())),
                    viewer_user_id: viewer.map(|v| v.to_string()).unwrap_or_default(),
                },
            )
            .await
            .map_err(unavailable)?;
        if let Some(err) = reply.error {
            return Err(rpc_error(err));
        }
        if !reply.found {
            return Ok(None);
        }
        let post = reply.post.ok_or_else(|| bad_reply("lookup.post"))?;
        Ok(Some(PostDetail {
            post,
            counts: reply.counts.unwrap_or_default(),
            viewer_liked: reply.viewer_liked,
        }))
    }

    /// Remembers a post this edge just created or forgets one it just deleted.
    pub async fn remember_post(&self, post_id: PostId, owner: Option<UserId>) {
        match owner {
            Some(owner) => self.known_posts.insert(post_id, owner).await,
            None => self.known_posts.invalidate(&post_id).await,
        }
    }

    /// Where a comment is (`None`: no such comment).
    pub async fn comment_location(
        &self,
        comment_id: CommentId,
    ) -> Result<Option<CommentLocation>, CacheError> {
        let reply: LookupReply = self
            .ask(
                "lookup.comment",
                subjects::LOOKUP_COMMENT,
                &LookupRequest {
                    target: Some(Target::CommentId(comment_id.to_string())),
                    ..Default::default()
                },
            )
            .await
            .map_err(unavailable)?;
        if let Some(err) = reply.error {
            return Err(rpc_error(err));
        }
        if !reply.found {
            return Ok(None);
        }
        let post_id = reply
            .post_id
            .parse()
            .map_err(|_| bad_reply("lookup.comment"))?;
        Ok(Some(CommentLocation { post_id }))
    }

    /// A user's counts and the viewer's relation to them.
    pub async fn profile(
        &self,
        user: UserId,
        viewer: Option<UserId>,
    ) -> Result<ProfileReply, CacheError> {
        let request = ProfileRequest {
            user_id: user.to_string(),
            viewer_user_id: viewer.map(|v| v.to_string()).unwrap_or_default(),
        };
        let reply: ProfileReply = self
            .ask("users.profile", subjects::USERS_PROFILE, &request)
            .await
            .map_err(unavailable)?;
        match reply.error {
            Some(err) => Err(rpc_error(err)),
            None => Ok(reply),
        }
    }

    /// A page of a user's followers (`followers`) or of whom they follow.
    pub async fn user_list(
        &self,
        user: UserId,
        followers: bool,
        viewer: Option<UserId>,
        page: Page,
    ) -> Result<UserListReply, CacheError> {
        let (label, subject) = if followers {
            ("users.followers", subjects::USERS_FOLLOWERS)
        } else {
            ("users.following", subjects::USERS_FOLLOWING)
        };
        let request = UserListRequest {
            user_id: user.to_string(),
            viewer_user_id: viewer.map(|v| v.to_string()).unwrap_or_default(),
            limit: page.limit,
            offset: page.offset,
        };
        let reply: UserListReply = self
            .ask(label, subject, &request)
            .await
            .map_err(unavailable)?;
        match reply.error {
            Some(err) => Err(rpc_error(err)),
            None => Ok(reply),
        }
    }

    /// A page of a post's comments.
    pub async fn comments(&self, post_id: PostId, page: Page) -> Result<CommentsReply, CacheError> {
        let reply: CommentsReply = self
            .ask(
                "comments.list",
                subjects::COMMENTS_LIST,
                &CommentsRequest {
                    post_id: post_id.to_string(),
                    limit: page.limit,
                    offset: page.offset,
                },
            )
            .await
            .map_err(unavailable)?;
        match reply.error.clone() {
            Some(err) => Err(rpc_error(err)),
            None => Ok(reply),
        }
    }

    /// Asks the cache service whether a verified token's session is alive.
    pub async fn session(&self, request: &SessionRequest) -> Result<SessionReply, RequestError> {
        self.ask("auth.session", subjects::AUTH_SESSION, request)
            .await
    }
}

fn unavailable(err: RequestError) -> CacheError {
    match err {
        RequestError::BadReply { subject, reason } => {
            tracing::error!(
                subject,
                reason,
                "the cache service sent an unreadable reply"
            );
            CacheError::BadReply { subject, reason }
        }
        other => {
            tracing::warn!(error = %other, "cache service unavailable");
            CacheError::Unavailable(other)
        }
    }
}

fn bad_reply(subject: &str) -> CacheError {
    tracing::error!(subject, "the cache service sent a reply without a result");
    CacheError::BadReply {
        subject: subject.to_owned(),
        reason: "no result".to_owned(),
    }
}

fn rpc_error(err: RpcError) -> CacheError {
    match ErrorCode::try_from(err.code).unwrap_or(ErrorCode::Unspecified) {
        ErrorCode::NotFound => CacheError::NotFound(err.message),
        ErrorCode::InvalidArgument => CacheError::InvalidArgument(err.message),
        ErrorCode::Unavailable | ErrorCode::Unspecified => CacheError::Degraded(err.message),
    }
}
