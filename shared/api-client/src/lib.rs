//! The one typed client of the edge's HTTP API (docs/api.md), for everything that talks to
//! the edge from outside: the edge and system tests, the chaos suite's load, `sidechain-load`
//! and `sidechain-bench`. It is a client of the HTTP contract, like the plugin, so it does
//! not depend on the edge crate; [`model`] mirrors the edge's JSON.
//!
//! Every route is a method of [`ApiClient`] answering a [`Call`]: a prepared request that
//! knows the type of its 2xx body. Adjust it (`bearer`, `idempotency_key`, `header`, `json`),
//! then either
//!
//! - [`Call::fetch`] it for the typed reply (a non-2xx is an [`ApiError`] holding the reply),
//! - or [`Call::send`] it for the raw [`Reply`] of any status (status, headers, whole body),
//!   or a [`Failure`] sorted into connect, timeout and transport, for callers that check
//!   error bodies or measure every answer.
//!
//! [`ApiClient::request`] is the escape hatch for any method, path and body (bad input).
//!
//! ```no_run
//! # async fn demo() -> Result<(), sidechain_api_client::ApiError> {
//! use sidechain_api_client::{ApiClient, Feed, Page};
//! let api = ApiClient::new("http://127.0.0.1:8787");
//! let me = api.me().bearer("token").fetch().await?;
//! let page = api.feed(Feed::Timeline, Some(Page::first(50))).bearer("token").fetch().await?;
//! let unauthorised = api.me().send().await?; // a 401 is a reply like any other
//! # let _ = (me, page, unauthorised); Ok(()) }
//! ```

pub mod model;
mod reply;

use std::marker::PhantomData;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use model::{
    Action, AuthEnvelope, Comment, CommentsPage, ErrorBody, FeedPage, Health, Login, Me,
    NewComment, NewPost, PageMeta, Play, Post, Refreshed, Registration, Session, User,
};
pub use reply::{AnswerClass, ApiError, Failure, FailureKind, Outcome, Reply, error_label};
/// Re-exported for [`ApiClient::request`] and for reading [`Reply::status`].
pub use reqwest::{Method, StatusCode};

use model::{FollowBody, LikeBody};

/// A feed of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// `GET /api/v1/feed/timeline`: posts of followed users (and your own).
    Timeline,
    /// `GET /api/v1/feed/unified`: following, recommendations, trending and recent mixed.
    Unified,
    /// `GET /api/v1/feed/trending`: most engagement recently.
    Trending,
    /// `GET /api/v1/recommendations/for-you`: Gorse's recommendations.
    ForYou,
}

impl Feed {
    /// The route's path.
    pub fn path(self) -> &'static str {
        match self {
            Feed::Timeline => "/api/v1/feed/timeline",
            Feed::Unified => "/api/v1/feed/unified",
            Feed::Trending => "/api/v1/feed/trending",
            Feed::ForYou => "/api/v1/recommendations/for-you",
        }
    }
}

/// A page of a list (`limit` 1–100, `offset` 0–10000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Items per page.
    pub limit: u32,
    /// Items skipped.
    pub offset: u32,
}

impl Page {
    /// The first `limit` items.
    pub fn first(limit: u32) -> Self {
        Self { limit, offset: 0 }
    }

    /// `path` with this page's query, or as it is for the API's default page.
    fn query(page: Option<Page>, path: &str) -> String {
        match page {
            Some(Page { limit, offset }) => format!("{path}?limit={limit}&offset={offset}"),
            None => path.to_owned(),
        }
    }
}

/// The edge API at one base URL. Cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
}

impl ApiClient {
    /// A client of `base` (`http://host:port`) with reqwest's defaults.
    pub fn new(base: impl Into<String>) -> Self {
        Self::with_http(reqwest::Client::new(), base)
    }

    /// A client of `base` over a reqwest client the caller tuned (timeouts, pool size).
    pub fn with_http(http: reqwest::Client, base: impl Into<String>) -> Self {
        let base: String = base.into();
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// The base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Any method and path (with its query), for what the typed methods do not cover.
    pub fn request(&self, method: Method, path: &str) -> Call<serde_json::Value> {
        Call::new(self.http.request(method, format!("{}{path}", self.base)))
    }

    fn typed<T>(&self, method: Method, path: &str) -> Call<T> {
        Call::new(self.request(method, path).builder)
    }

    /// `GET /health`.
    pub fn health(&self) -> Call<Health> {
        self.typed(Method::GET, "/health")
    }

    /// `POST /api/v1/auth/register` (201).
    pub fn register(&self, registration: &Registration) -> Call<AuthEnvelope> {
        self.typed(Method::POST, "/api/v1/auth/register")
            .json(registration)
    }

    /// `POST /api/v1/auth/login`.
    pub fn login(&self, login: &Login) -> Call<AuthEnvelope> {
        self.typed(Method::POST, "/api/v1/auth/login").json(login)
    }

    /// `POST /api/v1/auth/refresh` (bearer).
    pub fn refresh(&self) -> Call<Refreshed> {
        self.typed(Method::POST, "/api/v1/auth/refresh")
    }

    /// `GET /api/v1/auth/me` (bearer).
    pub fn me(&self) -> Call<Me> {
        self.typed(Method::GET, "/api/v1/auth/me")
    }

    /// `POST /api/v1/auth/logout` (bearer): revokes the token.
    pub fn logout(&self) -> Call<Action> {
        self.typed(Method::POST, "/api/v1/auth/logout")
    }

    /// `POST /api/v1/feed/post` (201): the new post.
    pub fn create_post(&self, post: &NewPost) -> Call<Post> {
        self.typed(Method::POST, "/api/v1/feed/post").json(post)
    }

    /// `DELETE /api/v1/posts/{id}` (author only).
    pub fn delete_post(&self, post: &str) -> Call<Action> {
        self.typed(Method::DELETE, &format!("/api/v1/posts/{post}"))
    }

    /// `POST /api/v1/social/like`, with an optional reaction.
    pub fn like(&self, post: &str, emoji: Option<&str>) -> Call<Action> {
        let body = LikeBody {
            activity_id: post,
            emoji,
        };
        self.typed(Method::POST, "/api/v1/social/like").json(&body)
    }

    /// `DELETE /api/v1/social/like`.
    pub fn unlike(&self, post: &str) -> Call<Action> {
        let body = LikeBody {
            activity_id: post,
            emoji: None,
        };
        self.typed(Method::DELETE, "/api/v1/social/like")
            .json(&body)
    }

    /// `POST /api/v1/users/{id}/follow`.
    pub fn follow(&self, user: &str) -> Call<Action> {
        self.typed(Method::POST, &format!("/api/v1/users/{user}/follow"))
    }

    /// `DELETE /api/v1/users/{id}/follow`.
    pub fn unfollow(&self, user: &str) -> Call<Action> {
        self.typed(Method::DELETE, &format!("/api/v1/users/{user}/follow"))
    }

    /// `POST /api/v1/social/follow` (the plugin's form, target in the body).
    pub fn social_follow(&self, user: &str) -> Call<Action> {
        self.follow_body("/api/v1/social/follow", user)
    }

    /// `POST /api/v1/social/unfollow` (target in the body).
    pub fn social_unfollow(&self, user: &str) -> Call<Action> {
        self.follow_body("/api/v1/social/unfollow", user)
    }

    fn follow_body(&self, path: &str, user: &str) -> Call<Action> {
        let body = FollowBody {
            target_user_id: user,
        };
        self.typed(Method::POST, path).json(&body)
    }

    /// `POST /api/v1/posts/{id}/play`.
    pub fn play(&self, post: &str, play: Play) -> Call<Action> {
        self.typed(Method::POST, &format!("/api/v1/posts/{post}/play"))
            .json(&play)
    }

    /// `POST /api/v1/posts/{id}/view`.
    pub fn view(&self, post: &str) -> Call<Action> {
        self.typed(Method::POST, &format!("/api/v1/posts/{post}/view"))
    }

    /// `POST /api/v1/posts/{id}/download`.
    pub fn download(&self, post: &str) -> Call<Action> {
        self.typed(Method::POST, &format!("/api/v1/posts/{post}/download"))
    }

    /// `POST /api/v1/posts/{id}/repost`.
    pub fn repost(&self, post: &str) -> Call<Action> {
        self.typed(Method::POST, &format!("/api/v1/posts/{post}/repost"))
    }

    /// `DELETE /api/v1/posts/{id}/repost`.
    pub fn unrepost(&self, post: &str) -> Call<Action> {
        self.typed(Method::DELETE, &format!("/api/v1/posts/{post}/repost"))
    }

    /// `POST /api/v1/posts/{id}/comments` (201): the comment.
    pub fn comment(&self, post: &str, comment: &NewComment) -> Call<Comment> {
        self.typed(Method::POST, &format!("/api/v1/posts/{post}/comments"))
            .json(comment)
    }

    /// `GET /api/v1/posts/{id}/comments`, oldest first (`None`: the API's default page).
    pub fn comments(&self, post: &str, page: Option<Page>) -> Call<CommentsPage> {
        let path = format!("/api/v1/posts/{post}/comments");
        self.typed(Method::GET, &Page::query(page, &path))
    }

    /// A feed page (`None`: the API's default page).
    pub fn feed(&self, feed: Feed, page: Option<Page>) -> Call<FeedPage> {
        self.typed(Method::GET, &Page::query(page, feed.path()))
    }

    /// `GET /api/v1/users/{id}/posts`, newest first (`None`: the API's default page).
    pub fn user_posts(&self, user: &str, page: Option<Page>) -> Call<FeedPage> {
        let path = format!("/api/v1/users/{user}/posts");
        self.typed(Method::GET, &Page::query(page, &path))
    }
}

/// A prepared request whose 2xx body is a `T`. Consumed by [`Call::send`] or [`Call::fetch`].
#[derive(Debug)]
#[must_use = "a call does nothing until it is sent"]
pub struct Call<T> {
    builder: reqwest::RequestBuilder,
    reply: PhantomData<fn() -> T>,
}

impl<T> Call<T> {
    fn new(builder: reqwest::RequestBuilder) -> Self {
        Self {
            builder,
            reply: PhantomData,
        }
    }

    fn map(self, f: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder) -> Self {
        Self::new(f(self.builder))
    }

    /// Sends `Authorization: Bearer <token>`. A token that is not a valid header value is
    /// left out (so the call gets the API's 401 rather than failing before it is sent).
    pub fn bearer(self, token: &str) -> Self {
        match HeaderValue::from_str(&format!("Bearer {token}")) {
            Ok(value) => self.map(|b| b.header(AUTHORIZATION, value)),
            Err(_) => self,
        }
    }

    /// [`Call::bearer`] when there is a token, anonymous otherwise.
    pub fn bearer_opt(self, token: Option<&str>) -> Self {
        match token {
            Some(token) => self.bearer(token),
            None => self,
        }
    }

    /// Sends `Idempotency-Key`, so a retried write is stored once.
    pub fn idempotency_key(self, key: &str) -> Self {
        self.header("idempotency-key", key)
    }

    /// Adds a header (an invalid name or value fails the call when it is sent).
    pub fn header(self, name: &str, value: &str) -> Self {
        self.map(|b| b.header(name, value))
    }

    /// Sends `body` as JSON, replacing any body set before.
    pub fn json(self, body: &impl Serialize) -> Self {
        self.map(|b| b.json(body))
    }

    /// Sends these bytes as the body, as they are (malformed input); set `Content-Type`
    /// with [`Call::header`].
    pub fn raw_body(self, body: impl Into<bytes::Bytes>) -> Self {
        let body: bytes::Bytes = body.into();
        self.map(|b| b.body(body))
    }

    /// Gives up on this call after `timeout` (over the client's own timeout).
    pub fn timeout(self, timeout: Duration) -> Self {
        self.map(|b| b.timeout(timeout))
    }

    /// A copy to send again (`None` only for streaming bodies, which this client never sets).
    pub fn try_clone(&self) -> Option<Self> {
        self.builder.try_clone().map(Self::new)
    }

    /// Sends the call and reads the whole body: the reply of any status, or why none came.
    pub async fn send(self) -> Outcome {
        let response = self.builder.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

impl<T: DeserializeOwned> Call<T> {
    /// Sends the call and decodes a 2xx body as `T`; any other status is
    /// [`ApiError::Status`] with the reply.
    pub async fn fetch(self) -> Result<T, ApiError> {
        let reply = self.send().await?;
        if !reply.status.is_success() {
            return Err(ApiError::Status(reply));
        }
        reply
            .json()
            .map_err(|source| ApiError::Decode { reply, source })
    }
}
