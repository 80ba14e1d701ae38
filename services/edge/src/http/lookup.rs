//! "The target must exist": the 404s of routes that act on a post or a user.

use sidechain_events::{PostId, UserId};

use super::error::ApiError;
use crate::cache_client::PostOwner;
use crate::state::AppState;

/// The post's owner, or 404.
pub async fn existing_post(state: &AppState, post_id: PostId) -> Result<PostOwner, ApiError> {
    state
        .cache
        .post_owner(post_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("post {post_id} does not exist")))
}

/// 404 unless the user exists.
pub async fn existing_user(state: &AppState, user_id: UserId) -> Result<(), ApiError> {
    match state.users.account(user_id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound(format!("user {user_id} does not exist"))),
    }
}
