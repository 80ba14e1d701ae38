//! The HTTP calls this tool makes to the edge API, and what came back.
//!
//! Paths and bodies follow `services/edge/src/http/{auth,posts,social,feeds}.rs`. A call
//! answers an [`Outcome`]: the status, whether `Retry-After` was sent, and the body bytes
//! (always read to the end, so measured latency includes the whole response), or a
//! transport failure sorted into `connect`, `timeout` or `transport`.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};

/// A feed of `/api/v1/feed/*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Feed {
    /// Posts of followed users.
    Timeline,
    /// Following, recommendations, trending and recent mixed.
    Unified,
    /// Most engagement recently.
    Trending,
}

impl Feed {
    fn path(self) -> &'static str {
        match self {
            Feed::Timeline => "/api/v1/feed/timeline",
            Feed::Unified => "/api/v1/feed/unified",
            Feed::Trending => "/api/v1/feed/trending",
        }
    }
}

/// A page of a feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Page {
    /// Items per page.
    pub(crate) limit: u32,
    /// Items skipped.
    pub(crate) offset: u32,
}

/// Body of `POST /api/v1/auth/register`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Registration {
    /// Unique email.
    pub(crate) email: String,
    /// Unique username (3–30 of `[A-Za-z0-9_-]`).
    pub(crate) username: String,
    /// At least 8 characters.
    pub(crate) password: String,
}

/// Body of `POST /api/v1/feed/post`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct NewPost {
    /// Shown in the feed.
    pub(crate) title: String,
    /// An https URL.
    pub(crate) audio_url: String,
    /// Tempo.
    pub(crate) bpm: f64,
    /// Musical key, e.g. `A minor`.
    pub(crate) key: String,
    /// One or two genres.
    pub(crate) genres: Vec<String>,
    /// Length of the loop.
    pub(crate) duration_seconds: f64,
    /// The DAW it came from.
    pub(crate) daw: String,
}

/// One API call, borrowing the ids it acts on.
#[derive(Debug, Clone)]
pub(crate) enum Call<'a> {
    /// `GET /health`.
    Health,
    /// `POST /api/v1/auth/register`.
    Register(&'a Registration),
    /// `POST /api/v1/auth/login` by username.
    Login {
        /// Username.
        username: &'a str,
        /// Password.
        password: &'a str,
    },
    /// `GET /api/v1/auth/me`.
    Me,
    /// `GET /api/v1/feed/{timeline,unified,trending}`.
    Feed(Feed, Page),
    /// `GET /api/v1/users/{id}/posts`.
    UserPosts(&'a str, Page),
    /// `POST /api/v1/social/like`.
    Like(&'a str),
    /// `POST /api/v1/posts/{id}/play`.
    Play {
        /// The post.
        post: &'a str,
        /// Seconds listened.
        duration: f64,
        /// Played to the end.
        completed: bool,
    },
    /// `POST /api/v1/users/{id}/follow`.
    Follow(&'a str),
    /// `POST /api/v1/posts/{id}/comments`.
    Comment {
        /// The post.
        post: &'a str,
        /// Text.
        content: &'a str,
    },
    /// `POST /api/v1/feed/post`.
    CreatePost(&'a NewPost),
}

#[derive(Serialize)]
struct LikeBody<'a> {
    activity_id: &'a str,
}

#[derive(Serialize)]
struct PlayBody {
    duration: f64,
    completed: bool,
}

#[derive(Serialize)]
struct CommentBody<'a> {
    content: &'a str,
}

#[derive(Serialize)]
struct LoginBody<'a> {
    username: &'a str,
    password: &'a str,
}

/// An answer with a status (any status, not only 2xx).
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    /// HTTP status.
    pub(crate) status: StatusCode,
    /// `Retry-After` in whole seconds, when sent and numeric.
    pub(crate) retry_after: Option<Duration>,
    /// Whether a `Retry-After` header was present at all.
    pub(crate) has_retry_after: bool,
    /// The whole body.
    pub(crate) body: Bytes,
}

impl Reply {
    /// The body as text for error messages, cut short.
    pub(crate) fn body_excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        text.chars().take(300).collect()
    }
}

/// Why no status came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureKind {
    /// The connection could not be made (refused, unreachable, DNS).
    Connect,
    /// The client-side timeout expired.
    Timeout,
    /// The connection broke mid-request or the body could not be read.
    Transport,
}

impl FailureKind {
    /// The label used in error counts.
    pub(crate) fn label(self) -> &'static str {
        match self {
            FailureKind::Connect => "connect",
            FailureKind::Timeout => "timeout",
            FailureKind::Transport => "transport",
        }
    }
}

/// A request that got no status.
#[derive(Debug)]
pub(crate) struct Failure {
    /// Which kind of failure.
    pub(crate) kind: FailureKind,
    /// The cause, for messages.
    pub(crate) error: reqwest::Error,
}

impl From<reqwest::Error> for Failure {
    fn from(error: reqwest::Error) -> Self {
        let kind = if error.is_timeout() {
            FailureKind::Timeout
        } else if error.is_connect() {
            FailureKind::Connect
        } else {
            FailureKind::Transport
        };
        Self { kind, error }
    }
}

/// What one call came to.
pub(crate) type Outcome = Result<Reply, Failure>;

/// The label an outcome is counted under when it is not a success: the status code
/// (`"503"`) or the failure kind (`"timeout"`). `None` for a 2xx.
pub(crate) fn error_label(outcome: &Outcome) -> Option<String> {
    match outcome {
        Ok(reply) if reply.status.is_success() => None,
        Ok(reply) => Some(reply.status.as_u16().to_string()),
        Err(failure) => Some(failure.kind.label().to_owned()),
    }
}

/// The part of register and login answers this tool uses.
#[derive(Debug, Deserialize)]
pub(crate) struct AuthEnvelope {
    /// The session.
    pub(crate) auth: AuthPayload,
}

/// A token and its user.
#[derive(Debug, Deserialize)]
pub(crate) struct AuthPayload {
    /// Bearer token.
    pub(crate) token: String,
    /// The user.
    pub(crate) user: UserRef,
}

/// A user's id.
#[derive(Debug, Deserialize)]
pub(crate) struct UserRef {
    /// User id (UUID).
    pub(crate) id: String,
}

/// The ids a write answer may carry: `event_id` (interactions) or `id` (a created post or
/// comment). Unknown fields are ignored.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WriteAck {
    /// Id of the stored event.
    pub(crate) event_id: Option<String>,
    /// Id of the created post or comment.
    pub(crate) id: Option<String>,
}

/// The edge API at one base URL.
#[derive(Debug, Clone)]
pub(crate) struct ApiClient {
    http: reqwest::Client,
    base: String,
}

impl ApiClient {
    /// A client keeping up to `connections` idle connections, giving up on a request after
    /// `timeout`.
    pub(crate) fn new(base: &Url, timeout: Duration, connections: usize) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("sidechain-load/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .pool_max_idle_per_host(connections)
            .tcp_nodelay(true)
            .no_proxy()
            .build()?;
        Ok(Self {
            http,
            base: base.as_str().trim_end_matches('/').to_owned(),
        })
    }

    /// The base URL, without a trailing slash.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// Sends `call` as the holder of `token`, with an `Idempotency-Key` when given.
    pub(crate) async fn send(
        &self,
        token: Option<&str>,
        call: &Call<'_>,
        idempotency_key: Option<&str>,
    ) -> Outcome {
        let page_query = |page: &Page| format!("?limit={}&offset={}", page.limit, page.offset);
        let (method, path) = match call {
            Call::Health => (Method::GET, "/health".to_owned()),
            Call::Register(_) => (Method::POST, "/api/v1/auth/register".to_owned()),
            Call::Login { .. } => (Method::POST, "/api/v1/auth/login".to_owned()),
            Call::Me => (Method::GET, "/api/v1/auth/me".to_owned()),
            Call::Feed(feed, page) => (Method::GET, format!("{}{}", feed.path(), page_query(page))),
            Call::UserPosts(user, page) => (
                Method::GET,
                format!("/api/v1/users/{user}/posts{}", page_query(page)),
            ),
            Call::Like(_) => (Method::POST, "/api/v1/social/like".to_owned()),
            Call::Play { post, .. } => (Method::POST, format!("/api/v1/posts/{post}/play")),
            Call::Follow(user) => (Method::POST, format!("/api/v1/users/{user}/follow")),
            Call::Comment { post, .. } => (Method::POST, format!("/api/v1/posts/{post}/comments")),
            Call::CreatePost(_) => (Method::POST, "/api/v1/feed/post".to_owned()),
        };
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        request = match call {
            Call::Register(body) => request.json(body),
            Call::Login { username, password } => request.json(&LoginBody { username, password }),
            Call::Like(post) => request.json(&LikeBody { activity_id: post }),
            Call::Play {
                duration,
                completed,
                ..
            } => request.json(&PlayBody {
                duration: *duration,
                completed: *completed,
            }),
            Call::Comment { content, .. } => request.json(&CommentBody { content }),
            Call::CreatePost(body) => request.json(body),
            Call::Health | Call::Me | Call::Feed(..) | Call::UserPosts(..) | Call::Follow(_) => {
                request
            }
        };
        if let Some(token) = token {
            // A token that is not a valid header value is sent without it (and gets a 401).
            if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
                request = request.header(AUTHORIZATION, value);
            }
        }
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await?;
        let status = response.status();
        let retry_header = response.headers().get(RETRY_AFTER);
        let has_retry_after = retry_header.is_some();
        let retry_after = retry_header
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.bytes().await?;
        Ok(Reply {
            status,
            retry_after,
            has_retry_after,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16) -> Outcome {
        Ok(Reply {
            status: StatusCode::from_u16(status).expect("valid status"),
            retry_after: None,
            has_retry_after: false,
            body: Bytes::new(),
        })
    }

    #[test]
    fn successes_have_no_error_label() {
        assert_eq!(error_label(&reply(200)), None);
        assert_eq!(error_label(&reply(201)), None);
        assert_eq!(error_label(&reply(503)).as_deref(), Some("503"));
        assert_eq!(error_label(&reply(429)).as_deref(), Some("429"));
    }

    #[test]
    fn write_acks_read_event_ids_and_entity_ids() {
        let ack: WriteAck = serde_json::from_str(
            r#"{"status":"ok","action":"like","target_id":"p1","event_id":"e1"}"#,
        )
        .expect("parses");
        assert_eq!(ack.event_id.as_deref(), Some("e1"));
        assert_eq!(ack.id, None);
        let ack: WriteAck =
            serde_json::from_str(r#"{"id":"c1","post_id":"p1","content":"nice"}"#).expect("parses");
        assert_eq!(ack.id.as_deref(), Some("c1"));
        assert_eq!(ack.event_id, None);
    }
}
