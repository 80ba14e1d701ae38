//! JSON shapes the clients read. Names and types follow what the Sidechain plugin expects
//! (see the design brief): `activities` + `meta` for feeds, `genre` as the first genre,
//! `time` in RFC 3339.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone as _, Utc};
use serde::Serialize;
use sidechain_events::UserId;
use sidechain_events::rpc::{CommentItem, FeedItem, FeedPage, ItemSource, Post, UserRecord};
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
    /// Tempo, rounded to a whole number (the plugin reads an integer).
    pub bpm: i64,
    /// Musical key.
    pub key: String,
    /// The loop's file name: the one the author shared, else `<username>_<id8>_<bpm>bpm.<ext>`.
    pub filename: String,
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
    /// Downloads.
    pub download_count: u64,
    /// Saves (saving is not built yet: always 0).
    pub save_count: u64,
    /// When it was posted (RFC 3339).
    pub time: DateTime<Utc>,
    /// Whether the viewer follows the author.
    pub is_following: bool,
    /// Whether the viewer is the author.
    pub is_own_post: bool,
    /// Whether the viewer likes it (a reaction is a like with an emoji).
    pub is_liked: bool,
    /// Whether the viewer reposted it.
    pub is_reposted: bool,
    /// Whether the viewer saved it (saving is not built yet: always false).
    pub is_saved: bool,
    /// Users who reacted with each emoji.
    pub reaction_counts: BTreeMap<String, u64>,
    /// Why it is in this feed: `following`, `gorse`, `trending` or `recent`.
    pub source: &'static str,
}

/// The file name a post's loop is offered under (feeds and `POST /posts/{id}/download`): the
/// one its author shared, else `<username>_<first 8 of the id>_<bpm>bpm.<extension of the
/// audio URL, or wav>`, as the Go backend the plugin was built against named downloads.
pub fn filename_of(post: &Post) -> String {
    if !post.filename.is_empty() {
        return post.filename.clone();
    }
    let path = post.audio_url.split(['?', '#']).next().unwrap_or_default();
    let extension = path
        .rsplit('/')
        .next()
        .and_then(|last| last.rsplit_once('.'))
        .map(|(_, ext)| ext)
        .filter(|ext| {
            !ext.is_empty() && ext.len() <= 5 && ext.chars().all(|c| c.is_ascii_alphanumeric())
        })
        .unwrap_or("wav");
    let user = if post.username.is_empty() {
        "user"
    } else {
        post.username.as_str()
    };
    let id: String = post.id.chars().take(8).collect();
    format!("{user}_{id}_{}bpm.{extension}", bpm_of(post.bpm))
}

/// Tempo as the plugin reads it: a whole number.
pub fn bpm_of(bpm: f64) -> i64 {
    if bpm.is_finite() {
        bpm.round() as i64
    } else {
        0
    }
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
            filename: filename_of(&post),
            id: post.id,
            user_id: post.user_id,
            username: post.username,
            title: post.title,
            audio_url: post.audio_url,
            waveform_url: non_empty(post.waveform_url),
            bpm: bpm_of(post.bpm),
            key: post.key,
            genres: post.genres,
            duration_seconds: post.duration_seconds,
            daw: non_empty(post.daw),
            like_count: counts.likes,
            play_count: counts.plays,
            comment_count: counts.comments,
            repost_count: counts.reposts,
            download_count: counts.downloads,
            save_count: 0,
            time: from_ms(post.created_at_ms),
            is_following: item.is_following,
            is_own_post: item.is_own_post,
            is_liked: item.is_liked,
            is_reposted: item.is_reposted,
            is_saved: item.is_saved,
            reaction_counts: item.reaction_counts.into_iter().collect(),
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
    /// Time-ordered feeds (timeline, a user's posts): pass it back as `cursor` for the next
    /// page, which then neither repeats nor skips posts however many arrived meanwhile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A feed page: `{"activities": [...], "meta": {...}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedResponse {
    /// The posts, in feed order.
    pub activities: Vec<PostView>,
    /// Paging.
    pub meta: PageMeta,
    /// A user's posts only: how many posts the user has (the plugin's profile reads it here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// A user's posts only: `meta.has_more` again, where the plugin's profile reads it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_more: Option<bool>,
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
                next_cursor: non_empty(page.next_cursor),
            },
            activities,
            total: None,
            has_more: None,
        }
    }

    /// Adds the top-level `total` and `has_more` of a user's posts.
    pub fn with_totals(mut self, total: u64) -> Self {
        self.total = Some(total);
        self.has_more = Some(self.meta.has_more);
        self
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
    /// When it was written (RFC 3339).
    pub created_at: DateTime<Utc>,
    /// The same as `created_at` (the name earlier clients read).
    pub time: DateTime<Utc>,
    /// Whether the viewer wrote it.
    pub is_own_comment: bool,
    /// Whether the viewer may edit it: false, editing comments is not built yet.
    pub can_edit: bool,
    /// Likes of the comment: 0, liking comments is not built yet.
    pub like_count: u64,
}

impl CommentView {
    /// The comment as `viewer` sees it.
    pub fn seen_by(item: CommentItem, viewer: UserId) -> Self {
        let at = from_ms(item.created_at_ms);
        Self {
            is_own_comment: item.user_id == viewer.to_string(),
            id: item.id,
            post_id: item.post_id,
            user_id: item.user_id,
            username: item.username,
            user_avatar_url: item.user_avatar_url,
            content: item.content,
            parent_id: non_empty(item.parent_id),
            created_at: at,
            time: at,
            can_edit: false,
            like_count: 0,
        }
    }
}

/// A page of comments.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommentsResponse {
    /// Oldest first.
    pub comments: Vec<CommentView>,
    /// Comments on the post in all.
    pub total_count: u64,
    /// Whether a next page exists (also in `meta`).
    pub has_more: bool,
    /// Paging.
    pub meta: PageMeta,
}

/// Answer to a like, reaction or unlike: the acknowledgement and the viewer's new state.
#[derive(Debug, Serialize, ToSchema)]
pub struct LikeResponse {
    /// The acknowledgement.
    #[serde(flatten)]
    pub action: ActionResponse,
    /// Whether the caller likes the post now.
    pub is_liked: bool,
}

/// Answer to `POST /api/v1/posts/{id}/download`: where to fetch the loop, under which name.
#[derive(Debug, Serialize, ToSchema)]
pub struct DownloadResponse {
    /// The acknowledgement.
    #[serde(flatten)]
    pub action: ActionResponse,
    /// The audio to fetch: the post's `audio_url` until a media service serves files.
    pub download_url: String,
    /// The name to save it under.
    pub filename: String,
    /// Downloads including this one.
    pub download_count: u64,
    /// The loop's musical facts, for the DAW.
    pub metadata: DownloadMetadata,
}

/// What a DAW may want to know about a downloaded loop.
#[derive(Debug, Serialize, ToSchema)]
pub struct DownloadMetadata {
    /// Tempo (whole number).
    pub bpm: i64,
    /// Musical key.
    pub key: String,
    /// Length in seconds.
    pub duration: f64,
    /// Primary genre.
    pub genre: Option<String>,
    /// The DAW it came from, if known.
    pub daw: Option<String>,
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
