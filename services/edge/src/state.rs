//! What request handlers share.

use std::sync::Arc;

use ipnet::IpNet;
use sidechain_events::events::event::Payload;
use sidechain_events::{EventId, PostId};
use sidechain_infra::nats::Stored;
use sidechain_infra::status::GorseStatusView;
use sidechain_infra::users::UserStore;
use sidechain_telemetry::admin::Readiness;

use crate::auth::extract::AuthUser;
use crate::auth::jwt::TokenService;
use crate::auth::password::Passwords;
use crate::auth::sessions::Sessions;
use crate::cache_client::{CacheClient, PostOwner};
use crate::error::ApiError;
use crate::events::{EventPublisher, IdempotencyKey};
use crate::rate_limit::RateLimiter;

/// Shared by all handlers of one edge instance.
#[derive(Debug)]
pub struct AppState {
    /// Issues and verifies tokens.
    pub tokens: TokenService,
    /// Hashes passwords.
    pub passwords: Passwords,
    /// Accounts.
    pub users: UserStore,
    /// Session checks.
    pub sessions: Sessions,
    /// Event publishing.
    pub events: EventPublisher,
    /// Reads from the cache service.
    pub cache: CacheClient,
    /// Rate limits.
    pub limiter: RateLimiter,
    /// Gorse health as last published.
    pub gorse: GorseStatusView,
    /// Readiness checks (also served on the API port).
    pub readiness: Readiness,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<[IpNet]>,
    /// Request body limit, reported in 413 errors.
    pub max_body_bytes: usize,
}

impl AppState {
    /// Records `payload` as an event by the signed-in user; returns once it is stored.
    pub async fn record(
        &self,
        user: &AuthUser,
        id: EventId,
        payload: Payload,
    ) -> Result<Stored, ApiError> {
        self.events
            .publish(id, user.session.user_id, &user.session.username, payload)
            .await
    }

    /// Records an interaction by `user`: the event id comes from the idempotency key.
    pub async fn record_action(
        &self,
        user: &AuthUser,
        key: &IdempotencyKey,
        action: &str,
        payload: Payload,
    ) -> Result<EventId, ApiError> {
        let id = key.event_id(user.session.user_id, action);
        self.record(user, id, payload).await?;
        Ok(id)
    }

    /// The post's owner, or 404.
    pub async fn existing_post(&self, post_id: PostId) -> Result<PostOwner, ApiError> {
        self.cache
            .post_owner(post_id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("post {post_id} does not exist")))
    }
}
