//! Likes and follows: `/api/v1/social/*` (the plugin's routes) and `/api/v1/users/{id}/follow`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use sidechain_events::events::{Follow, Like, Unfollow, Unlike, event::Payload};
use sidechain_events::{PostId, UserId};
use utoipa::ToSchema;

use super::extract::{ApiJson, ApiPath, Validate};
use super::validate;
use super::views::ActionResponse;
use crate::auth::extract::AuthUser;
use crate::error::{ApiError, ErrorBody};
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
    responses((status = 200, description = "Stored", body = ActionResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn like(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<LikeRequest>,
) -> Result<Json<ActionResponse>, ApiError> {
    let post_id = body.activity_id;
    state.existing_post(post_id).await?;
    let payload = Payload::Like(Like {
        post_id: post_id.to_string(),
        emoji: body.emoji.unwrap_or_default(),
    });
    let event_id = state.record_action(&user, &key, "like", payload).await?;
    Ok(Json(ActionResponse::new("like", post_id, event_id)))
}

/// Takes a like back.
#[utoipa::path(delete, path = "/api/v1/social/like", tag = "interactions",
    security(("bearer" = [])),
    request_body = UnlikeRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries store one event")),
    responses((status = 200, description = "Stored", body = ActionResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn unlike(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<UnlikeRequest>,
) -> Result<Json<ActionResponse>, ApiError> {
    let post_id = body.activity_id;
    state.existing_post(post_id).await?;
    let payload = Payload::Unlike(Unlike {
        post_id: post_id.to_string(),
    });
    let event_id = state.record_action(&user, &key, "unlike", payload).await?;
    Ok(Json(ActionResponse::new("unlike", post_id, event_id)))
}

async fn change_follow(
    state: &AppState,
    user: &AuthUser,
    key: &IdempotencyKey,
    target: UserId,
    follow: bool,
) -> Result<Json<ActionResponse>, ApiError> {
    if target == user.session.user_id {
        return Err(ApiError::bad_request(
            "cannot_follow_self",
            "you cannot follow yourself",
        ));
    }
    let exists = state.users.by_id(target).await.map_err(|err| {
        tracing::warn!(error = %err, "user lookup failed");
        ApiError::unavailable(
            "user_store_unavailable",
            "accounts are temporarily unavailable; retry shortly",
        )
    })?;
    if exists.is_none() {
        return Err(ApiError::NotFound(format!("user {target} does not exist")));
    }
    let target_user_id = target.to_string();
    let (action, payload) = if follow {
        ("follow", Payload::Follow(Follow { target_user_id }))
    } else {
        ("unfollow", Payload::Unfollow(Unfollow { target_user_id }))
    };
    let event_id = state.record_action(user, key, action, payload).await?;
    Ok(Json(ActionResponse::new(action, target, event_id)))
}

/// Follows a user.
#[utoipa::path(post, path = "/api/v1/social/follow", tag = "social",
    security(("bearer" = [])),
    request_body = FollowRequest,
    responses((status = 200, body = ActionResponse), (status = 400, description = "Invalid, or `cannot_follow_self`", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn follow(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<FollowRequest>,
) -> Result<Json<ActionResponse>, ApiError> {
    change_follow(&state, &user, &key, body.target_user_id, true).await
}

/// Unfollows a user.
#[utoipa::path(post, path = "/api/v1/social/unfollow", tag = "social",
    security(("bearer" = [])),
    request_body = FollowRequest,
    responses((status = 200, body = ActionResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn unfollow(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<FollowRequest>,
) -> Result<Json<ActionResponse>, ApiError> {
    change_follow(&state, &user, &key, body.target_user_id, false).await
}

/// Follows the user in the path.
#[utoipa::path(post, path = "/api/v1/users/{id}/follow", tag = "social",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "User id (UUID)")),
    responses((status = 200, body = ActionResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn follow_user(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiPath(target): ApiPath<UserId>,
) -> Result<Json<ActionResponse>, ApiError> {
    change_follow(&state, &user, &key, target, true).await
}

/// Unfollows the user in the path.
#[utoipa::path(delete, path = "/api/v1/users/{id}/follow", tag = "social",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "User id (UUID)")),
    responses((status = 200, body = ActionResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn unfollow_user(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiPath(target): ApiPath<UserId>,
) -> Result<Json<ActionResponse>, ApiError> {
    change_follow(&state, &user, &key, target, false).await
}
