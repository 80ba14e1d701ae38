//! Users: who am I (`/api/v1/users/me`), profiles by id or username, follower and following
//! lists, own-profile edits and username changes.
//!
//! Identity fields (username, display name, bio, avatar, creation time) come from the account
//! in the `users` bucket, so an edit is visible to its author at once; counts and the viewer's
//! relation come from the cache service's read models (`users.profile`), lists from
//! `users.followers` / `users.following`.
//!
//! The plugin (JUCE) sends a PUT with a body as POST, so the two writes here answer both.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, TimeZone as _, Utc};
use serde::{Deserialize, Serialize};
use sidechain_events::UserId;
use sidechain_events::events::{ProfileUpdated, UsernameChanged, event::Payload};
use sidechain_events::rpc::{ProfileReply, UserListItem, UserRecord};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, AuthUser, MaybeAuthUser, PageQuery, Validate};
use super::validate;
use super::views::PageMeta;
use crate::auth::jwt::TokenError;
use crate::events::IdempotencyKey;
use crate::state::AppState;

fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// A user's profile: the flat object the plugin's `User` model and the web app's profile page
/// read.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProfileView {
    /// User id (UUID).
    pub id: String,
    /// Unique handle.
    pub username: String,
    /// Name shown in the UI.
    pub display_name: String,
    /// Profile text, possibly empty.
    pub bio: String,
    /// Profile picture URL, or empty.
    pub avatar_url: String,
    /// The same URL under the web app's name.
    pub profile_picture_url: String,
    /// Only in the signed-in user's own profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Followers. Absent from `/users/me` only while the read models cannot be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follower_count: Option<u64>,
    /// Users followed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub following_count: Option<u64>,
    /// Posts (not deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_count: Option<u64>,
    /// The viewer follows this user.
    pub is_following: bool,
    /// This user follows the viewer.
    pub follows_you: bool,
    /// The viewer is this user.
    pub is_own_profile: bool,
    /// Accounts are public (there are no private accounts).
    pub is_private: bool,
    /// There is no verification (always false).
    pub is_verified: bool,
    /// When the account was made (RFC 3339).
    pub created_at: DateTime<Utc>,
}

impl ProfileView {
    fn new(record: &UserRecord, counts: Option<&ProfileReply>, viewer: Option<UserId>) -> Self {
        let own = viewer.is_some_and(|v| v.to_string() == record.id);
        Self {
            id: record.id.clone(),
            username: record.username.clone(),
            display_name: record.display_name.clone(),
            bio: record.bio.clone(),
            avatar_url: record.avatar_url.clone(),
            profile_picture_url: record.avatar_url.clone(),
            email: own.then(|| record.email.clone()),
            follower_count: counts.map(|c| c.follower_count),
            following_count: counts.map(|c| c.following_count),
            post_count: counts.map(|c| c.post_count),
            is_following: counts.is_some_and(|c| c.is_following),
            follows_you: counts.is_some_and(|c| c.follows_you),
            is_own_profile: own,
            is_private: false,
            is_verified: false,
            created_at: from_ms(record.created_at_ms),
        }
    }
}

/// A user in a follower or following list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserSummary {
    /// User id (UUID).
    pub id: String,
    /// Unique handle.
    pub username: String,
    /// Name shown in the UI.
    pub display_name: String,
    /// Profile text.
    pub bio: String,
    /// Profile picture URL, or empty.
    pub avatar_url: String,
    /// The same URL under the web app's name.
    pub profile_picture_url: String,
    /// Their followers.
    pub follower_count: u64,
    /// Whom they follow.
    pub following_count: u64,
    /// The viewer follows them.
    pub is_following: bool,
    /// They follow the viewer.
    pub follows_you: bool,
}

impl From<UserListItem> for UserSummary {
    fn from(item: UserListItem) -> Self {
        Self {
            id: item.id,
            username: item.username,
            display_name: item.display_name,
            bio: item.bio,
            profile_picture_url: item.avatar_url.clone(),
            avatar_url: item.avatar_url,
            follower_count: item.follower_count,
            following_count: item.following_count,
            is_following: item.is_following,
            follows_you: item.follows_you,
        }
    }
}

/// A page of followers or following: `users` (the plugin also accepts `followers` /
/// `following`, and reads `total` and `has_more`; the web app reads `total`, `limit`, `offset`).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserListResponse {
    /// Newest relation first.
    pub users: Vec<UserSummary>,
    /// Everyone in the list.
    pub total: u64,
    /// Whether a next page exists.
    pub has_more: bool,
    /// Requested page size.
    pub limit: u32,
    /// Requested offset.
    pub offset: u32,
    /// Paging, as in every other list.
    pub meta: PageMeta,
}

/// `PUT /api/v1/users/me`: every field optional; an absent field is left as it is.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ProfileUpdateRequest {
    /// A new username (the plugin's profile editor sends it with the rest); same rules and
    /// effects as `PUT /api/v1/users/username`.
    #[schema(pattern = r"^[A-Za-z0-9_-]{3,30}$")]
    pub username: Option<String>,
    /// 1–64 characters, no control or bidirectional formatting characters.
    #[schema(min_length = 1, max_length = 64)]
    pub display_name: Option<String>,
    /// At most 500 characters; line breaks allowed. Empty clears it.
    #[schema(max_length = 500)]
    pub bio: Option<String>,
    /// An http(s) URL; empty removes the picture.
    #[schema(max_length = 2048)]
    pub avatar_url: Option<String>,
    /// The web app's name for `avatar_url`.
    #[schema(max_length = 2048)]
    pub profile_picture_url: Option<String>,
}

impl ProfileUpdateRequest {
    /// The avatar asked for, under either name.
    fn avatar(&self) -> Option<&str> {
        self.avatar_url
            .as_deref()
            .or(self.profile_picture_url.as_deref())
    }

    fn changes_profile(&self) -> bool {
        self.display_name.is_some() || self.bio.is_some() || self.avatar().is_some()
    }
}

impl Validate for ProfileUpdateRequest {
    fn validate(&self) -> Result<(), ApiError> {
        if let Some(username) = &self.username {
            validate::username(username)?;
        }
        if let Some(name) = &self.display_name {
            validate::length("display_name", name, 1, 64)?;
            validate::plain_text("display_name", name)?;
        }
        if let Some(bio) = &self.bio {
            validate::length("bio", bio, 0, 500)?;
            // Line breaks are fine in a bio; other control characters are not.
            validate::plain_text("bio", &bio.replace(['\n', '\r'], " "))?;
        }
        if let (Some(a), Some(b)) = (&self.avatar_url, &self.profile_picture_url)
            && a != b
        {
            return Err(ApiError::bad_request(
                "invalid_field",
                "avatar_url and profile_picture_url differ; send one",
            ));
        }
        if let Some(url) = self.avatar()
            && !url.is_empty()
        {
            validate::url("avatar_url", url)?;
        }
        Ok(())
    }
}

/// `PUT /api/v1/users/username`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UsernameChangeRequest {
    /// The new username: unique (case-insensitive), 3–30 letters, digits, `_`, `-`.
    #[schema(pattern = r"^[A-Za-z0-9_-]{3,30}$")]
    pub username: String,
}

impl Validate for UsernameChangeRequest {
    fn validate(&self) -> Result<(), ApiError> {
        validate::username(&self.username)
    }
}

/// The account a path names: a user id, a username (the web app), or `me`.
async fn resolve(
    state: &AppState,
    ident: &str,
    viewer: Option<UserId>,
) -> Result<UserRecord, ApiError> {
    let id = if ident == "me" {
        Some(viewer.ok_or(ApiError::Unauthorized {
            code: "missing_token",
            message: "sign in to ask for your own profile".into(),
        })?)
    } else {
        ident.parse::<UserId>().ok()
    };
    let record = match id {
        Some(id) => state.users.by_id(id).await?,
        None => {
            if validate::username(ident).is_err() {
                return Err(ApiError::bad_request(
                    "invalid_id",
                    "the path names neither a user id (UUID) nor a username",
                ));
            }
            state.users.by_login(ident).await?
        }
    };
    record.ok_or_else(|| ApiError::NotFound(format!("user {ident} does not exist")))
}

/// A user's profile picture for a reply that shows them as an author (empty if none, or if
/// the accounts cannot be read: the write is stored either way).
pub async fn avatar_of(state: &AppState, user: UserId) -> String {
    match state.users.by_id(user).await {
        Ok(Some(record)) => record.avatar_url,
        _ => String::new(),
    }
}

async fn own_record(state: &AppState, user: &AuthUser) -> Result<UserRecord, ApiError> {
    state
        .users
        .by_id(user.session.user_id)
        .await?
        .ok_or_else(|| TokenError::Invalid.into())
}

/// The signed-in user's own profile, flat, with counts (what the plugin asks after signing in
/// and at every start; `GET /api/v1/auth/me` answers the same user wrapped in `user`).
#[utoipa::path(get, path = "/api/v1/users/me", tag = "users",
    security(("bearer" = [])),
    responses((status = 200, body = ProfileView), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn me(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
) -> Result<Json<ProfileView>, ApiError> {
    let record = own_record(&state, &user).await?;
    let viewer = Some(user.session.user_id);
    // Who-am-I gates the plugin's whole UI: without the read models it still answers, without
    // the counts (the plugin reads them with defaults).
    let counts = match state.cache.profile(user.session.user_id, viewer).await {
        Ok(counts) => Some(counts),
        Err(err) => {
            tracing::warn!(error = %err, "own profile served without counts");
            None
        }
    };
    Ok(Json(ProfileView::new(&record, counts.as_ref(), viewer)))
}

/// A user's profile, by id or username, with counts and the viewer's relation.
#[utoipa::path(get, path = "/api/v1/users/{id}/profile", tag = "users",
    params(("id" = String, Path, description = "User id (UUID), username, or `me`")),
    responses((status = 200, body = ProfileView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn profile(
    State(state): State<Arc<AppState>>,
    MaybeAuthUser(viewer): MaybeAuthUser,
    ApiPath(ident): ApiPath<String>,
) -> Result<Json<ProfileView>, ApiError> {
    let viewer = viewer.map(|v| v.session.user_id);
    let record = resolve(&state, &ident, viewer).await?;
    let id: UserId = record.id.parse().map_err(|_| ApiError::Internal)?;
    let counts = state.cache.profile(id, viewer).await?;
    Ok(Json(ProfileView::new(&record, Some(&counts), viewer)))
}

async fn list(
    state: &AppState,
    viewer: Option<UserId>,
    ident: &str,
    followers: bool,
    query: PageQuery,
) -> Result<Json<UserListResponse>, ApiError> {
    let page = query.page()?;
    let record = resolve(state, ident, viewer).await?;
    let id: UserId = record.id.parse().map_err(|_| ApiError::Internal)?;
    let reply = state.cache.user_list(id, followers, viewer, page).await?;
    let mut users = Vec::with_capacity(reply.users.len());
    for mut item in reply.users {
        // Accounts older than the profile read model (not replayed yet): ask the accounts.
        if item.username.is_empty() {
            let Some(account) = item
                .id
                .parse::<UserId>()
                .ok()
                .map(|id| state.users.by_id(id))
            else {
                continue;
            };
            let Some(account) = account.await? else {
                continue;
            };
            item.username = account.username;
            item.display_name = account.display_name;
            item.bio = account.bio;
            item.avatar_url = account.avatar_url;
        }
        users.push(UserSummary::from(item));
    }
    Ok(Json(UserListResponse {
        meta: PageMeta {
            limit: page.limit,
            offset: page.offset,
            count: users.len(),
            has_more: reply.has_more,
            next_cursor: None,
        },
        users,
        total: reply.total,
        has_more: reply.has_more,
        limit: page.limit,
        offset: page.offset,
    }))
}

/// Who follows a user, newest first.
#[utoipa::path(get, path = "/api/v1/users/{id}/followers", tag = "users",
    params(("id" = String, Path, description = "User id (UUID) or username"), PageQuery),
    responses((status = 200, body = UserListResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn followers(
    State(state): State<Arc<AppState>>,
    MaybeAuthUser(viewer): MaybeAuthUser,
    ApiPath(ident): ApiPath<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<UserListResponse>, ApiError> {
    let viewer = viewer.map(|v| v.session.user_id);
    list(&state, viewer, &ident, true, query).await
}

/// Whom a user follows, newest first.
#[utoipa::path(get, path = "/api/v1/users/{id}/following", tag = "users",
    params(("id" = String, Path, description = "User id (UUID) or username"), PageQuery),
    responses((status = 200, body = UserListResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn following(
    State(state): State<Arc<AppState>>,
    MaybeAuthUser(viewer): MaybeAuthUser,
    ApiPath(ident): ApiPath<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<UserListResponse>, ApiError> {
    let viewer = viewer.map(|v| v.session.user_id);
    list(&state, viewer, &ident, false, query).await
}

/// Takes `new` as the user's username: claims it (atomic: of two users asking for one name,
/// one gets it), changes the account, stores `username_changed`, then releases the old name.
/// If the event cannot be stored, the account and the claim are put back.
async fn rename(
    state: &AppState,
    user: &AuthUser,
    current: UserRecord,
    new: &str,
) -> Result<UserRecord, ApiError> {
    if current.username == new {
        return Ok(current);
    }
    let id = user.session.user_id;
    let old = current.username.clone();
    // A change of case only keeps the same claim.
    let same_claim = old.to_lowercase() == new.to_lowercase();
    if !same_claim && !state.users.claim_username(new, id).await? {
        return Err(ApiError::Conflict {
            code: "username_taken",
            message: "that username is taken".into(),
        });
    }
    let withdraw_claim = || async {
        if !same_claim {
            state.users.release_username(new).await;
        }
    };
    let changed = match state
        .users
        .modify(id, |record| record.username = new.to_owned())
        .await
    {
        Ok(Some(record)) => record,
        Ok(None) => {
            withdraw_claim().await;
            return Err(TokenError::Invalid.into());
        }
        Err(err) => {
            withdraw_claim().await;
            return Err(err.into());
        }
    };
    let payload = Payload::UsernameChanged(UsernameChanged {
        old_username: old.clone(),
        new_username: new.to_owned(),
    });
    if let Err(err) = state
        .record(&user.session, &IdempotencyKey::NONE, payload)
        .await
    {
        // Nothing half-done: without its event the change is withdrawn.
        let _ = state
            .users
            .modify(id, |record| {
                if record.username == new {
                    record.username.clone_from(&old);
                }
            })
            .await;
        withdraw_claim().await;
        return Err(err.into());
    }
    if !same_claim {
        state.users.release_username(&old).await;
    }
    tracing::info!(user_id = %id, "username changed");
    Ok(changed)
}

async fn own_profile(
    state: &AppState,
    user: &AuthUser,
    record: &UserRecord,
) -> Result<ProfileView, ApiError> {
    let viewer = Some(user.session.user_id);
    let counts = state.cache.profile(user.session.user_id, viewer).await.ok();
    Ok(ProfileView::new(record, counts.as_ref(), viewer))
}

/// Edits the caller's profile: display name, bio, picture (and username, as the plugin's
/// editor sends it). Stores `profile_updated` (and `username_changed`) before answering.
/// Fields the API does not keep (`is_private`, `social_links`, `website`) are ignored.
#[utoipa::path(put, path = "/api/v1/users/me", tag = "users",
    security(("bearer" = [])),
    request_body = ProfileUpdateRequest,
    responses((status = 200, description = "The profile after the change", body = ProfileView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, description = "`username_taken`", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn update_me(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    ApiJson(body): ApiJson<ProfileUpdateRequest>,
) -> Result<Json<ProfileView>, ApiError> {
    let mut record = own_record(&state, &user).await?;
    if let Some(username) = &body.username {
        record = rename(&state, &user, record, username).await?;
    }
    if body.changes_profile() {
        let id = user.session.user_id;
        // Compare-and-set on the account: concurrent edits of different fields both land.
        record = state
            .users
            .modify(id, |record| {
                if let Some(name) = &body.display_name {
                    record.display_name = name.trim().to_owned();
                }
                if let Some(bio) = &body.bio {
                    record.bio = bio.trim().to_owned();
                }
                if let Some(url) = body.avatar() {
                    record.avatar_url = url.to_owned();
                }
            })
            .await?
            .ok_or_else(|| ApiError::from(TokenError::Invalid))?;
        // The event carries the whole profile as the account now holds it, so the read models
        // converge on it; a retry after a failure here stores it again.
        let payload = Payload::ProfileUpdated(ProfileUpdated {
            display_name: record.display_name.clone(),
            bio: record.bio.clone(),
            avatar_url: record.avatar_url.clone(),
        });
        state
            .record(&user.session, &IdempotencyKey::NONE, payload)
            .await?;
    }
    Ok(Json(own_profile(&state, &user, &record).await?))
}

/// Changes the caller's username. The old name is released; tokens issued before stay valid
/// (the username in a token is informational, every check reads the account), and posts and
/// comments show the new name.
#[utoipa::path(put, path = "/api/v1/users/username", tag = "users",
    security(("bearer" = [])),
    request_body = UsernameChangeRequest,
    responses((status = 200, description = "The profile with its new username", body = ProfileView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, description = "`username_taken`", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn change_username(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    ApiJson(body): ApiJson<UsernameChangeRequest>,
) -> Result<Json<ProfileView>, ApiError> {
    let record = own_record(&state, &user).await?;
    let record = rename(&state, &user, record, &body.username).await?;
    Ok(Json(own_profile(&state, &user, &record).await?))
}
