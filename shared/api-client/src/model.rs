//! The JSON the API takes and gives, mirroring `services/edge/src/http/views.rs` and the
//! request structs of `services/edge/src/http/{auth,posts,social}.rs` (docs/api.md). Replies
//! ignore fields they do not name, so the edge can add fields without breaking a client.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Body of `POST /api/v1/auth/register`.
#[derive(Debug, Clone, Serialize)]
pub struct Registration {
    /// Unique, case-insensitive.
    pub email: String,
    /// Unique, case-insensitive; 3–30 letters, digits, `_`, `-`.
    pub username: String,
    /// 8–128 characters.
    pub password: String,
    /// Shown in the UI; the edge defaults it to the username.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

impl Registration {
    /// `username` with the email `<username>@<email_domain>` and no display name.
    pub fn new(username: &str, email_domain: &str, password: &str) -> Self {
        Self {
            email: format!("{username}@{email_domain}"),
            username: username.to_owned(),
            password: password.to_owned(),
            display_name: None,
        }
    }
}

/// Body of `POST /api/v1/auth/login`: by username or by email.
#[derive(Debug, Clone, Serialize)]
pub struct Login {
    /// Sign in by email…
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// …or by username.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The password.
    pub password: String,
}

impl Login {
    /// Sign in by username.
    pub fn by_username(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            email: None,
            username: Some(username.into()),
            password: password.into(),
        }
    }
}

/// Body of `POST /api/v1/feed/post`.
#[derive(Debug, Clone, Serialize)]
pub struct NewPost {
    /// At most 200 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// http(s) URL of the audio.
    pub audio_url: String,
    /// http(s) URL of the waveform image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waveform_url: Option<String>,
    /// Tempo, in (0, 400].
    pub bpm: f64,
    /// Musical key, e.g. `A minor`.
    pub key: String,
    /// 1–5 genres.
    pub genres: Vec<String>,
    /// Length of the loop, in (0, 3600].
    pub duration_seconds: f64,
    /// The DAW it came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daw: Option<String>,
}

/// Body of `POST /api/v1/posts/{id}/play`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Play {
    /// Seconds listened.
    pub duration: f64,
    /// Played to the end.
    pub completed: bool,
}

/// Body of `POST /api/v1/posts/{id}/comments`.
#[derive(Debug, Clone, Serialize)]
pub struct NewComment {
    /// 1–2000 characters.
    pub content: String,
    /// The comment this answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
}

/// Body of `POST` and `DELETE /api/v1/social/like`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LikeBody<'a> {
    pub(crate) activity_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) emoji: Option<&'a str>,
}

/// Body of `POST /api/v1/social/{follow,unfollow}`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FollowBody<'a> {
    pub(crate) target_user_id: &'a str,
}

/// A user as the API shows it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct User {
    /// User id (UUID).
    pub id: String,
    /// Unique handle.
    pub username: String,
    /// Name shown in the UI.
    pub display_name: String,
    /// Only in the signed-in user's own profile.
    pub email: Option<String>,
    /// When the account was made.
    pub created_at: DateTime<Utc>,
}

/// Reply of register and login: `{"auth": {...}}`.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthEnvelope {
    /// The new session.
    pub auth: Session,
}

/// A token and who it is for.
#[derive(Debug, Clone, Deserialize)]
pub struct Session {
    /// Bearer token (JWT).
    pub token: String,
    /// The signed-in user.
    pub user: User,
    /// When the token expires.
    pub expires_at: DateTime<Utc>,
}

/// Reply of `POST /api/v1/auth/refresh`: the session's fields at top level.
pub type Refreshed = Session;

/// Reply of `GET /api/v1/auth/me`.
#[derive(Debug, Clone, Deserialize)]
pub struct Me {
    /// The signed-in user.
    pub user: User,
}

/// A post as feeds show it (also the reply of creating one).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Post {
    /// Post id (UUID).
    pub id: String,
    /// Author id.
    pub user_id: String,
    /// Author's username.
    pub username: String,
    /// Title, possibly empty.
    pub title: String,
    /// The loop's audio.
    pub audio_url: String,
    /// Waveform image, if any.
    pub waveform_url: Option<String>,
    /// Tempo.
    pub bpm: f64,
    /// Musical key.
    pub key: String,
    /// Primary genre (the first of `genres`).
    pub genre: Option<String>,
    /// All genres.
    pub genres: Vec<String>,
    /// Length of the loop.
    pub duration_seconds: f64,
    /// The DAW it came from, if known.
    pub daw: Option<String>,
    /// Likes.
    pub like_count: u64,
    /// Plays.
    pub play_count: u64,
    /// Comments.
    pub comment_count: u64,
    /// Reposts.
    pub repost_count: u64,
    /// When it was posted.
    pub time: DateTime<Utc>,
    /// Whether the viewer follows the author.
    pub is_following: bool,
    /// Whether the viewer is the author.
    pub is_own_post: bool,
    /// Why it is in this feed: `following`, `gorse`, `trending` or `recent`.
    pub source: String,
}

/// Paging facts of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct PageMeta {
    /// Requested page size.
    pub limit: u32,
    /// Requested offset.
    pub offset: u32,
    /// Items in this page.
    pub count: usize,
    /// Whether a next page exists.
    pub has_more: bool,
}

/// A feed page: `{"activities": [...], "meta": {...}}`.
#[derive(Debug, Clone, Deserialize)]
pub struct FeedPage {
    /// The posts, in feed order.
    pub activities: Vec<Post>,
    /// Paging.
    pub meta: PageMeta,
}

/// A comment.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Comment {
    /// Comment id (UUID).
    pub id: String,
    /// The post it is on.
    pub post_id: String,
    /// Author id.
    pub user_id: String,
    /// Author's username.
    pub username: String,
    /// Text.
    pub content: String,
    /// The comment it answers, if any.
    pub parent_id: Option<String>,
    /// When it was written.
    pub time: DateTime<Utc>,
}

/// A page of comments, oldest first.
#[derive(Debug, Clone, Deserialize)]
pub struct CommentsPage {
    /// The comments.
    pub comments: Vec<Comment>,
    /// Paging.
    pub meta: PageMeta,
}

/// Acknowledgement of an interaction (like, play, follow, logout, …): it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Action {
    /// Always `ok`.
    pub status: String,
    /// What was recorded, e.g. `like`.
    pub action: String,
    /// The post or user acted on.
    pub target_id: String,
    /// Id of the stored event (the same on a retry with the same `Idempotency-Key`).
    pub event_id: String,
}

/// Reply of `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// `sidechain-edge`.
    pub service: String,
    /// Build version.
    pub version: String,
}

/// The one error shape: `{"error", "message", "request_id"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ErrorBody {
    /// Snake-case code, e.g. `invalid_token`.
    pub error: String,
    /// Human-readable text.
    pub message: String,
    /// The request's `X-Request-ID`.
    pub request_id: String,
}
