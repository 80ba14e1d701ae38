//! JSON shapes the clients read. Names and types follow what the Sidechain plugin expects
//! (see the design brief): `activities` + `meta` for feeds, `genre` as the first genre,
//! `time` in RFC 3339.

use chrono::{DateTime, TimeZone as _, Utc};
use serde::Serialize;
use sidechain_events::rpc::{CommentItem, FeedItem, FeedPage, ItemSource, UserRecord};
use utoipa::ToSchema;

use crate::events::Recorded;
use crate::page::Page;

fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// A user as shown to clients.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserView {
    /// User id (UUID).
    pub id: String,
    /// Unique handle.
    pub username: String,
    /// Name shown in the UI.
    pub display_name: String,
    /// Only in the signed-in user's own profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// When the account was made.
    pub created_at: DateTime<Utc>,
}

impl UserView {
    /// The owner's own view of their account (with email).
    pub fn own(record: &UserRecord) -> Self {
        Self {
            id: record.id.clone(),
            username: record.username.clone(),
            display_name: record.display_name.clone(),
            email: Some(record.email.clone()),
            created_at: from_ms(record.created_at_ms),
        }
    }
}

/// Body of register and login: `{"auth": {...}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthEnvelope {
    /// The new session.
    pub auth: AuthPayload,
}

/// A token and who it is for.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthPayload {
    /// Bearer token (JWT, HS256).
    pub token: String,
    /// The signed-in user.
    pub user: UserView,
    /// When the token expires.
    pub expires_at: DateTime<Utc>,
}

/// Body of refresh: the same fields at top level.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefreshResponse {
    /// New bearer token.
    pub token: String,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// The signed-in user.
    pub user: UserView,
}

/// Body of `GET /api/v1/auth/me`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    /// The signed-in user.
    pub user: UserView,
}

/// A post as shown in feeds.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PostView {
    /// Post id (UUID).
    pub id: String,
    /// Author id.
    pub user_id: String,
    /// Author's username (their current one).
    pub username: String,
    /// Author's profile picture, or empty.
    pub user_avatar_url: String,
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
    /// When it was posted (RFC 3339).
    pub time: DateTime<Utc>,
    /// Whether the viewer follows the author.
    pub is_following: bool,
    /// Whether the viewer is the author.
    pub is_own_post: bool,
    /// Why it is in this feed: `following`, `gorse`, `trending` or `recent`.
    pub source: &'static str,
}

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

impl From<FeedItem> for PostView {
    fn from(item: FeedItem) -> Self {
        let source = match ItemSource::try_from(item.source).unwrap_or(ItemSource::Unspecified) {
            ItemSource::Following => "following",
            ItemSource::Gorse => "gorse",
            ItemSource::Trending => "trending",
            ItemSource::Recent | ItemSource::Unspecified => "recent",
        };
        let post = item.post.unwrap_or_default();
        let counts = item.counts.unwrap_or_default();
        Self {
            user_avatar_url: item.author_avatar_url,
            genre: post.genres.first().cloned(),
            id: post.id,
            user_id: post.user_id,
            username: post.username,
            title: post.title,
            audio_url: post.audio_url,
            waveform_url: non_empty(post.waveform_url),
            bpm: post.bpm,
            key: post.key,
            genres: post.genres,
            duration_seconds: post.duration_seconds,
            daw: non_empty(post.daw),
            like_count: counts.likes,
            play_count: counts.plays,
            comment_count: counts.comments,
            repost_count: counts.reposts,
            time: from_ms(post.created_at_ms),
            is_following: item.is_following,
            is_own_post: item.is_own_post,
            source,
        }
    }
}

/// Paging facts of a list.
#[derive(Debug, Serialize, ToSchema)]
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
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedResponse {
    /// The posts, in feed order.
    pub activities: Vec<PostView>,
    /// Paging.
    pub meta: PageMeta,
}

impl FeedResponse {
    /// The client view of a page from the cache service.
    pub fn from_page(page: FeedPage, request: Page) -> Self {
        let activities: Vec<PostView> = page.items.into_iter().map(PostView::from).collect();
        Self {
            meta: PageMeta {
                limit: request.limit,
                offset: request.offset,
                count: activities.len(),
                has_more: page.has_more,
            },
            activities,
        }
    }
}

/// A comment.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CommentView {
    /// Comment id (UUID).
    pub id: String,
    /// The post it is on.
    pub post_id: String,
    /// Author id.
    pub user_id: String,
    /// Author's username (their current one).
    pub username: String,
    /// Author's profile picture, or empty.
    pub user_avatar_url: String,
    /// Text.
    pub content: String,
    /// The comment it answers, if any.
    pub parent_id: Option<String>,
    /// When it was written.
    pub time: DateTime<Utc>,
}

impl From<CommentItem> for CommentView {
    fn from(item: CommentItem) -> Self {
        Self {
            id: item.id,
            post_id: item.post_id,
            user_id: item.user_id,
            username: item.username,
            user_avatar_url: item.user_avatar_url,
            content: item.content,
            parent_id: non_empty(item.parent_id),
            time: from_ms(item.created_at_ms),
        }
    }
}

/// A page of comments.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommentsResponse {
    /// Oldest first.
    pub comments: Vec<CommentView>,
    /// Paging.
    pub meta: PageMeta,
}

/// Acknowledgement of an interaction (like, play, follow, …): it is stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionResponse {
    /// Always `ok`.
    pub status: &'static str,
    /// What was recorded, e.g. `like`, `play`, `follow`.
    pub action: &'static str,
    /// The post or user acted on.
    pub target_id: String,
    /// Id of the stored event (the same on a retry with the same `Idempotency-Key`).
    pub event_id: String,
}

impl ActionResponse {
    /// The acknowledgement of a recorded action on `target_id`.
    pub fn new(recorded: Recorded, target_id: impl ToString) -> Self {
        Self {
            status: "ok",
            action: recorded.action,
            target_id: target_id.to_string(),
            event_id: recorded.event_id.to_string(),
        }
    }
}
