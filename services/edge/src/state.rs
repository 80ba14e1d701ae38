//! What request handlers share: the edge's domain services, built once in `lib.rs`.
//!
//! This module sits below `http/`: it speaks in domain types and errors, never HTTP ones.

use std::sync::Arc;

use ipnet::IpNet;
use sidechain_events::events::event::Payload;
use sidechain_infra::status::GorseStatusView;
use sidechain_infra::users::UserStore;
use sidechain_telemetry::admin::Readiness;

use crate::auth::jwt::TokenService;
use crate::auth::password::Passwords;
use crate::auth::sessions::{Session, Sessions};
use crate::cache_client::CacheClient;
use crate::events::{EventPublisher, IdempotencyKey, RecordError, Recorded};
use crate::media::Audio;
use crate::media_urls::MediaUrls;
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
    /// Which media URLs clients may hand us.
    pub media_urls: MediaUrls,
    /// Uploaded audio: accepting uploads, reading stored objects.
    pub audio: Audio,
}

impl AppState {
    /// Records `payload` as an event by the session's user, its id derived from `key`;
    /// returns once the stream has stored it.
    pub async fn record(
        &self,
        session: &Session,
        key: &IdempotencyKey,
        payload: Payload,
    ) -> Result<Recorded, RecordError> {
        self.events
            .record(key, session.user_id, &session.username, payload)
            .await
    }
}
