//! Likes, reactions, plays, listens, recommendation clicks and follows: `/api/v1/social/*`,
//! `/api/v1/feed/like` / `unlike` and `/api/v1/recommendations/click` (the plugin's routes), and
//! `/api/v1/users/{id}/follow`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use sidechain_events::events::{
    Follow, Like, Listen, Play, RecommendationClick, Unfollow, Unlike, event::Payload,
};
use sidechain_events::{PostId, UserId};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, AuthUser, Validate};
use super::lookup::{existing_post, existing_user};
use super::validate;
use super::views::{ActionResponse, LikeResponse};
use crate::events::IdempotencyKey;
use crate::state::AppState;

/// `POST /api/v1/social/like`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LikeRequest {
    /// The post (UUID).
    #[schema(value_type = String, format = Uuid)]
    pub activity_id: PostId,
    /// Optional reaction, at most 16 characters.
    #[schema(max_length = 16)]
    pub emoji: Option<String>,
}

impl Validate for LikeRequest {
    fn validate(&self) -> Result<(), ApiError> {
        match &self.emoji {
            Some(emoji) => validate::length("emoji", emoji, 0, 16),
            None => Ok(()),
        }
    }
}

/// `DELETE /api/v1/social/like`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UnlikeRequest {
    /// The post (UUID).
    #[schema(value_type = String, format = Uuid)]
    pub activity_id: PostId,
}

impl Validate for UnlikeRequest {
    fn validate(&self) -> Result<(), ApiError> {
        Ok(())
    }
}

/// `POST /api/v1/social/follow` and `/unfollow`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FollowRequest {
    /// The user to follow or unfollow (UUID).
    #[schema(value_type = String, format = Uuid)]
    pub target_user_id: UserId,
}

impl Validate for FollowRequest {
    fn validate(&self) -> Result<(), ApiError> {
        Ok(())
    }
}

/// Likes a post (with an optional reaction emoji). Liking twice is one like; a second emoji
/// replaces the first.
#[utoipa::path(post, path = "/api/v1/social/like", tag = "interactions",
    security(("bearer" = [])),
    request_body = LikeRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries store one event")),
    responses((status = 422, description = "Idempotency-Key already used for a different request", body = ErrorBody), (status = 200, description = "Stored", body = LikeResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn like(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<LikeRequest>,
) -> Result<Json<LikeResponse>, ApiError> {
    record_like(&state, &user, &key, body.activity_id, body.emoji).await
}

/// The plugin's like (`FeedClient.cpp`): the same as `POST /api/v1/social/like`.
#[utoipa::path(post, path = "/api/v1/feed/like", tag = "interactions",
    security(("bearer" = [])),
    request_body = LikeRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries store one event")),
    responses((status = 422, description = "Idempotency-Key already used for a different request", body = ErrorBody), (status = 200, description = "Stored", body = LikeResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn feed_like(
    state: State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    body: ApiJson<LikeRequest>,
) -> Result<Json<LikeResponse>, ApiError> {
    like(state, user, key, body).await
}

async fn record_like(
    state: &AppState,
    user: &AuthUser,
    key: &IdempotencyKey,
    post_id: PostId,
    emoji: Option<String>,
) -> Result<Json<LikeResponse>, ApiError> {
    existing_post(state, post_id).await?;
    let payload = Payload::Like(Like {
        post_id: post_id.to_string(),
        emoji: emoji.unwrap_or_default().trim().to_owned(),
    });
    let recorded = state.record(&user.session, key, payload).await?;
    Ok(Json(LikeResponse {
        action: ActionResponse::new(recorded, post_id),
        is_liked: true,
    }))
}

/// `POST /api/v1/social/react`: a reaction is a like with an emoji.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReactRequest {
    /// The post (UUID).
    #[schema(value_type = String, format = Uuid)]
    pub activity_id: PostId,
    /// The reaction, 1–16 characters.
    #[schema(min_length = 1, max_length = 16)]
    pub emoji: String,
}

impl Validate for ReactRequest {
    fn validate(&self) -> Result<(), ApiError> {
        validate::length("emoji", self.emoji.trim(), 1, 16)
    }
}

/// Reacts to a post with an emoji: stored as a like with that emoji (one reaction per user; a
/// new emoji replaces the old one, an unlike takes both back).
#[utoipa::path(post, path = "/api/v1/social/react", tag = "interactions",
    security(("bearer" = [])),
    request_body = ReactRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries store one event")),
    responses((status = 422, description = "Idempotency-Key already used for a different request", body = ErrorBody), (status = 200, description = "Stored", body = LikeResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn react(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<ReactRequest>,
) -> Result<Json<LikeResponse>, ApiError> {
    record_like(&state, &user, &key, body.activity_id, Some(body.emoji)).await
}

/// Takes a like back.
#[utoipa::path(delete, path = "/api/v1/social/like", tag = "interactions",
    security(("bearer" = [])),
    request_body = UnlikeRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries store one event")),
    responses((status = 422, description = "Idempotency-Key already used for a different request", body = ErrorBody), (status = 200, description = "Stored", body = LikeResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn unlike(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<UnlikeRequest>,
) -> Result<Json<LikeResponse>, ApiError> {
    let post_id = body.activity_id;
    existing_post(&state, post_id).await?;
    let payload = Payload::Unlike(Unlike {
        post_id: post_id.to_string(),
    });
    let recorded = state.record(&user.session, &key, payload).await?;
    Ok(Json(LikeResponse {
        action: ActionResponse::new(recorded, post_id),
        is_liked: false,
    }))
}

/// The plugin's unlike (`FeedClient.cpp`): the same as `DELETE /api/v1/social/like`.
#[utoipa::path(post, path = "/api/v1/feed/unlike", tag = "interactions",
    security(("bearer" = [])),
    request_body = UnlikeRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries store one event")),
    responses((status = 422, description = "Idempotency-Key already used for a different request", body = ErrorBody), (status = 200, description = "Stored", body = LikeResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn feed_unlike(
    state: State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    body: ApiJson<UnlikeRequest>,
) -> Result<Json<LikeResponse>, ApiError> {
    unlike(state, user, key, body).await
}

/// `POST /api/v1/social/play`: the plugin reports a play without its length.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SocialPlayRequest {
    /// The post (UUID).
    #[schema(value_type = String, format = Uuid)]
    pub activity_id: PostId,
}

impl Validate for SocialPlayRequest {
    fn validate(&self) -> Result<(), ApiError> {
        Ok(())
    }
}

/// Counts a play (the plugin's form of `POST /api/v1/posts/{id}/play`; its length follows
/// in `POST /api/v1/social/listen-duration`).
#[utoipa::path(post, path = "/api/v1/social/play", tag = "interactions",
    security(("bearer" = [])),
    request_body = SocialPlayRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries store one event")),
    responses((status = 422, description = "Idempotency-Key already used for a different request", body = ErrorBody), (status = 200, description = "Stored", body = ActionResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn play(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<SocialPlayRequest>,
) -> Result<Json<ActionResponse>, ApiError> {
    let post_id = body.activity_id;
    existing_post(&state, post_id).await?;
    let payload = Payload::Play(Play {
        post_id: post_id.to_string(),
        duration_seconds: 0.0,
        completed: false,
    });
    let recorded = state.record(&user.session, &key, payload).await?;
    Ok(Json(ActionResponse::new(recorded, post_id)))
}

/// `POST /api/v1/social/listen-duration`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ListenRequest {
    /// The post (UUID).
    #[schema(value_type = String, format = Uuid)]
    pub activity_id: PostId,
    /// Seconds listened, 0–86400 (a JSON number).
    #[schema(minimum = 0.0, maximum = 86400.0)]
    pub duration: f64,
}

impl Validate for ListenRequest {
    fn validate(&self) -> Result<(), ApiError> {
        validate::range("duration", self.duration, 0.0, 86_400.0, false)
    }
}

/// Share of a loop a listen must cover to count as heard to the end.
const COMPLETED_SHARE: f64 = 0.9;

/// Records how long the caller listened. A listen covering 90 % of the loop or more is
/// `completed` (positive feedback for recommendations); it does not count another play.
#[utoipa::path(post, path = "/api/v1/social/listen-duration", tag = "interactions",
    security(("bearer" = [])),
    request_body = ListenRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries store one event")),
    responses((status = 422, description = "Idempotency-Key already used for a different request", body = ErrorBody), (status = 200, description = "Stored", body = ActionResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn listen_duration(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<ListenRequest>,
) -> Result<Json<ActionResponse>, ApiError> {
    let post_id = body.activity_id;
    let detail = state
        .cache
        .post_detail(post_id, None)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("post {post_id} does not exist")))?;
    let length = detail.post.duration_seconds;
    let payload = Payload::Listen(Listen {
        post_id: post_id.to_string(),
        duration_seconds: body.duration,
        completed: length > 0.0 && body.duration >= COMPLETED_SHARE * length,
    });
    let recorded = state.record(&user.session, &key, payload).await?;
    Ok(Json(ActionResponse::new(recorded, post_id)))
}

/// `POST /api/v1/recommendations/click`, as `FeedClient.cpp` sends it.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RecommendationClickRequest {
    /// The post (UUID).
    #[schema(value_type = String, format = Uuid)]
    pub post_id: PostId,
    /// The list it was shown in (1–32 characters), e.g. `for_you`.
    #[schema(min_length = 1, max_length = 32)]
    pub source: String,
    /// Its 0-based position in that list (a JSON integer, 0–10000).
    #[schema(minimum = 0, maximum = 10000)]
    pub position: i32,
    /// Whether it was played to the end.
    #[serde(default)]
    pub completed: bool,
    /// Seconds played, when known (0–86400).
    #[schema(minimum = 0.0, maximum = 86400.0)]
    pub play_duration: Option<f64>,
}

impl Validate for RecommendationClickRequest {
    fn validate(&self) -> Result<(), ApiError> {
        validate::length("source", &self.source, 1, 32)?;
        validate::plain_text("source", &self.source)?;
        if !(0..=10_000).contains(&self.position) {
            return Err(ApiError::bad_request(
                "invalid_field",
                "position must be between 0 and 10000",
            ));
        }
        match self.play_duration {
            Some(seconds) => validate::range("play_duration", seconds, 0.0, 86_400.0, false),
            None => Ok(()),
        }
    }
}

/// Records that the caller opened a recommended post (read-type feedback for Gorse).
#[utoipa::path(post, path = "/api/v1/recommendations/click", tag = "interactions",
    security(("bearer" = [])),
    request_body = RecommendationClickRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries store one event")),
    responses((status = 422, description = "Idempotency-Key already used for a different request", body = ErrorBody), (status = 200, description = "Stored", body = ActionResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn recommendation_click(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<RecommendationClickRequest>,
) -> Result<Json<ActionResponse>, ApiError> {
    let post_id = body.post_id;
    existing_post(&state, post_id).await?;
    let payload = Payload::RecommendationClick(RecommendationClick {
        post_id: post_id.to_string(),
        source: body.source.trim().to_owned(),
        position: body.position,
        completed: body.completed,
        play_duration_seconds: body.play_duration.unwrap_or_default(),
    });
    let recorded = state.record(&user.session, &key, payload).await?;
    Ok(Json(ActionResponse::new(recorded, post_id)))
}

async fn change_follow(
    state: &AppState,
    user: &AuthUser,
    key: &IdempotencyKey,
    target: UserId,
    follow: bool,
) -> Result<Json<FollowResponse>, ApiError> {
    if target == user.session.user_id {
        return Err(ApiError::bad_request(
            "cannot_follow_self",
            "you cannot follow yourself",
        ));
    }
    existing_user(state, target).await?;
    let target_user_id = target.to_string();
    let payload = if follow {
        Payload::Follow(Follow { target_user_id })
    } else {
        Payload::Unfollow(Unfollow { target_user_id })
    };
    let recorded = state.record(&user.session, key, payload).await?;
    // The plugin shows the target's new follower count from this reply (SocialClient.cpp,
    // followUserObservable). The profile request waits for the read models to include this
    // event; if they cannot answer, the count is left out (the write is stored either way).
    let follower_count = match state
        .cache
        .profile(target, Some(user.session.user_id))
        .await
    {
        Ok(profile) => Some(profile.follower_count),
        Err(err) => {
            tracing::warn!(error = %err, "follow answered without the follower count");
            None
        }
    };
    Ok(Json(FollowResponse {
        action: ActionResponse::new(recorded, target),
        is_following: follow,
        follower_count,
    }))
}

/// Acknowledgement of a follow or unfollow, with the relation and count after it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FollowResponse {
    /// What was stored.
    #[serde(flatten)]
    pub action: ActionResponse,
    /// Whether the caller now follows the target.
    pub is_following: bool,
    /// The target's followers now; absent if the read models could not be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follower_count: Option<u64>,
}

/// Follows a user.
#[utoipa::path(post, path = "/api/v1/social/follow", tag = "social",
    security(("bearer" = [])),
    request_body = FollowRequest,
    responses((status = 422, description = "Idempotency-Key already used for a different request", body = ErrorBody), (status = 200, body = FollowResponse), (status = 400, description = "Invalid, or `cannot_follow_self`", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn follow(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<FollowRequest>,
) -> Result<Json<FollowResponse>, ApiError> {
    change_follow(&state, &user, &key, body.target_user_id, true).await
}

/// Unfollows a user.
#[utoipa::path(post, path = "/api/v1/social/unfollow", tag = "social",
    security(("bearer" = [])),
    request_body = FollowRequest,
    responses((status = 422, description = "Idempotency-Key already used for a different request", body = ErrorBody), (status = 200, body = FollowResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn unfollow(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<FollowRequest>,
) -> Result<Json<FollowResponse>, ApiError> {
    change_follow(&state, &user, &key, body.target_user_id, false).await
}

/// Follows the user in the path.
#[utoipa::path(post, path = "/api/v1/users/{id}/follow", tag = "social",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "User id (UUID)")),
    responses((status = 422, description = "Idempotency-Key already used for a different request", body = ErrorBody), (status = 200, body = FollowResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn follow_user(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiPath(target): ApiPath<UserId>,
) -> Result<Json<FollowResponse>, ApiError> {
    change_follow(&state, &user, &key, target, true).await
}

/// Unfollows the user in the path.
#[utoipa::path(delete, path = "/api/v1/users/{id}/follow", tag = "social",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "User id (UUID)")),
    responses((status = 422, description = "Idempotency-Key already used for a different request", body = ErrorBody), (status = 200, body = FollowResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn unfollow_user(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiPath(target): ApiPath<UserId>,
) -> Result<Json<FollowResponse>, ApiError> {
    change_follow(&state, &user, &key, target, false).await
}
