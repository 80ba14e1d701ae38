//! Likes and follows: `/api/v1/social/*` (the plugin's routes) and `/api/v1/users/{id}/follow`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use sidechain_events::events::{Follow, Like, Unfollow, Unlike, event::Payload};
use sidechain_events::{PostId, UserId};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, AuthUser, Validate};
use super::lookup::{existing_post, existing_user};
use super::validate;
use super::views::ActionResponse;
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

/// Likes a post.
#[utoipa::path(post, path = "/api/v1/social/like", tag = "interactions",
    security(("bearer" = [])),
    request_body = LikeRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries store one event")),
    responses((status = 422, description = "Idempotency-Key already used for a different request", body = ErrorBody), (status = 200, description = "Stored", body = ActionResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn like(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<LikeRequest>,
) -> Result<Json<ActionResponse>, ApiError> {
    let post_id = body.activity_id;
    existing_post(&state, post_id).await?;
    let payload = Payload::Like(Like {
        post_id: post_id.to_string(),
        emoji: body.emoji.unwrap_or_default(),
    });
    let recorded = state.record(&user.session, &key, payload).await?;
    Ok(Json(ActionResponse::new(recorded, post_id)))
}

/// Takes a like back.
#[utoipa::path(delete, path = "/api/v1/social/like", tag = "interactions",
    security(("bearer" = [])),
    request_body = UnlikeRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries store one event")),
    responses((status = 422, description = "Idempotency-Key already used for a different request", body = ErrorBody), (status = 200, description = "Stored", body = ActionResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn unlike(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<UnlikeRequest>,
) -> Result<Json<ActionResponse>, ApiError> {
    let post_id = body.activity_id;
    existing_post(&state, post_id).await?;
    let payload = Payload::Unlike(Unlike {
        post_id: post_id.to_string(),
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
