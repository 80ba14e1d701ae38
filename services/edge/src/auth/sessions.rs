//! Session checks with two tiers of cache.
//!
//! 1. In-process (moka): verified sessions for at most `SESSION_CACHE_TTL` (≤ 5 min) and never
//!    past the token's expiry. Concurrent misses for one token make one remote check.
//! 2. The cache service (`auth.session` request/reply), which keeps `jwt_cache:{sha256}` in
//!    Redis and knows every revocation.
//!
//! Revocation reaches every edge instance through the `auth.revoked` broadcast: the instance
//! handling a logout sends it at once, and the cache service sends it again when it applies the
//! logout event. Each instance also keeps the revoked token hashes it heard of until expiry.
//!
//! Ending every session of a user (sign out everywhere, password change) moves the user's
//! "sessions valid after" epoch: tokens issued before it are dead. The epoch is kept in the
//! user's record (the `users` bucket, durable: a Redis wipe does not bring sessions back), in
//! the cache service's read model, and, once broadcast, in each edge's memory.
//!
//! If the cache service does not answer, the edge checks what it can itself — the token is not
//! in the revocation list (`revoked:<jti>` in Redis) and its user exists (the `users` bucket) —
//! and trusts that for [`LOCAL_FALLBACK_TTL`] only. If it cannot check revocations either, the
//! request is refused with 503: a signed-out token is never accepted for lack of a check.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::Client;
use moka::Expiry;
use moka::future::Cache;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use prost::Message as _;
use sidechain_events::rpc::{SessionReply, SessionRequest, SessionStatus, TokenRevoked};
use sidechain_events::{UserId, subjects};
use tokio_util::sync::CancellationToken;

use super::jwt::VerifiedToken;
use crate::cache_client::CacheClient;
use sidechain_infra::users::{UserStore, record_revokes};

/// How long a session checked only locally (cache service unreachable) is trusted.
pub const LOCAL_FALLBACK_TTL: Duration = Duration::from_secs(30);

/// A live session: who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The user.
    pub user_id: UserId,
    /// Current username.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// When the token expires.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// Who vouched for it.
    pub source: SessionSource,
}

/// Who checked a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionSource {
    /// The cache service (knows revocations).
    CacheService,
    /// This edge alone, while the cache service did not answer.
    LocalFallback,
}

/// Why a verified token is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The owner logged out with this token.
    #[error("token revoked")]
    Revoked,
    /// The token's user no longer exists.
    #[error("unknown user")]
    UnknownUser,
    /// Neither the cache service nor the user store could answer.
    #[error("session store unavailable")]
    Unavailable,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LookupLabels {
    tier: &'static str,
    result: &'static str,
}

struct SessionExpiry {
    ttl: Duration,
}

impl Expiry<String, Arc<Session>> for SessionExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        session: &Arc<Session>,
        _now: Instant,
    ) -> Option<Duration> {
        let until_expiry = (session.expires_at - chrono::Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        let ttl = match session.source {
            SessionSource::CacheService => self.ttl,
            SessionSource::LocalFallback => LOCAL_FALLBACK_TTL.min(self.ttl),
        };
        Some(ttl.min(until_expiry))
    }
}

/// The session checker of one edge instance.
#[derive(Clone)]
pub struct Sessions {
    cache: Cache<String, Arc<Session>>,
    revoked: Cache<String, ()>,
    /// Per user: tokens issued (ms) before this are dead.
    epochs: Cache<UserId, i64>,
    remote: CacheClient,
    users: UserStore,
    redis: sidechain_infra::redis::RedisConn,
    nats: Client,
    lookups: Family<LookupLabels, Counter>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("cached", &self.cache.entry_count())
            .field("revoked", &self.revoked.entry_count())
            .finish()
    }
}

impl Sessions {
    /// A checker trusting cached sessions for `ttl`; `max_token_ttl` bounds how long revocations
    /// are remembered.
    pub fn new(
        remote: CacheClient,
        users: UserStore,
        redis: sidechain_infra::redis::RedisConn,
        nats: Client,
        ttl: Duration,
        max_token_ttl: Duration,
        registry: &mut Registry,
    ) -> Self {
        let lookups = Family::<LookupLabels, Counter>::default();
        registry.register(
            "session_lookups",
            "Session checks by tier (memory|cache_service|local_fallback) and result",
            lookups.clone(),
        );
        Self {
            cache: Cache::builder()
                .max_capacity(200_000)
                .expire_after(SessionExpiry { ttl })
                .build(),
            revoked: Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(max_token_ttl)
                .build(),
            epochs: Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(max_token_ttl)
                .build(),
            remote,
            users,
            redis,
            nats,
            lookups,
        }
    }

    fn count(&self, tier: &'static str, result: &'static str) {
        self.lookups
            .get_or_create(&LookupLabels { tier, result })
            .inc();
    }

    /// Whether the token's session is alive.
    pub async fn check(&self, token: &VerifiedToken) -> Result<Arc<Session>, SessionError> {
        if self.revoked.contains_key(&token.sha256) || self.ended_here(token).await {
            self.count("memory", "revoked");
            return Err(SessionError::Revoked);
        }
        if let Some(session) = self.cache.get(&token.sha256).await {
            self.count("memory", "hit");
            tracing::debug!("session cache hit");
            return Ok(session);
        }
        self.count("memory", "miss");
        tracing::debug!("session cache miss");
        let this = self.clone();
        let token_for_init = token.clone();
        self.cache
            .try_get_with(token.sha256.clone(), async move {
                this.check_remotely(&token_for_init).await.map(Arc::new)
            })
            .await
            .map_err(|err| (*err).clone())
    }

    async fn check_remotely(&self, token: &VerifiedToken) -> Result<Session, SessionError> {
        let request = SessionRequest {
            token_sha256: token.sha256.clone(),
            token_id: token.token_id.clone(),
            user_id: token.user_id.to_string(),
            expires_at_ms: token.expires_at.timestamp_millis(),
            issued_at_ms: token.issued_at.timestamp_millis(),
        };
        match self.remote.session(&request).await {
            Ok(reply) => self.interpret(token, reply).await,
            Err(err) => {
                tracing::warn!(error = %err, "cache service did not answer a session check; checking locally");
                self.check_locally(token).await
            }
        }
    }

    async fn interpret(
        &self,
        token: &VerifiedToken,
        reply: SessionReply,
    ) -> Result<Session, SessionError> {
        match SessionStatus::try_from(reply.status).unwrap_or(SessionStatus::Unspecified) {
            SessionStatus::Active => {
                self.count("cache_service", "active");
                let user = reply.user.unwrap_or_default();
                Ok(Session {
                    user_id: token.user_id,
                    username: if user.username.is_empty() {
                        token.username.clone()
                    } else {
                        user.username
                    },
                    display_name: user.display_name,
                    expires_at: token.expires_at,
                    source: SessionSource::CacheService,
                })
            }
            SessionStatus::Revoked => {
                self.count("cache_service", "revoked");
                self.revoked.insert(token.sha256.clone(), ()).await;
                Err(SessionError::Revoked)
            }
            SessionStatus::UnknownUser => {
                self.count("cache_service", "unknown_user");
                Err(SessionError::UnknownUser)
            }
            SessionStatus::Unspecified => {
                tracing::warn!(error = ?reply.error, "cache service could not check a session; checking locally");
                self.check_locally(token).await
            }
        }
    }

    async fn check_locally(&self, token: &VerifiedToken) -> Result<Session, SessionError> {
        match sidechain_infra::sessions::is_revoked(&self.redis, &token.token_id).await {
            Ok(false) => {}
            Ok(true) => {
                self.count("local_fallback", "revoked");
                self.revoked.insert(token.sha256.clone(), ()).await;
                return Err(SessionError::Revoked);
            }
            Err(err) => {
                self.count("local_fallback", "unavailable");
                tracing::warn!(error = %err, "cannot check revocations; refusing the session check");
                return Err(SessionError::Unavailable);
            }
        }
        match self.users.account(token.user_id).await {
            Ok(Some(user))
                if record_revokes(&user, &token.token_id, token.issued_at.timestamp_millis()) =>
            {
                self.count("local_fallback", "revoked");
                Err(SessionError::Revoked)
            }
            Ok(Some(user)) => {
                self.count("local_fallback", "active");
                Ok(Session {
                    user_id: token.user_id,
                    username: user.username,
                    display_name: user.display_name,
                    expires_at: token.expires_at,
                    source: SessionSource::LocalFallback,
                })
            }
            Ok(None) => {
                self.count("local_fallback", "unknown_user");
                Err(SessionError::UnknownUser)
            }
            Err(err) => {
                self.count("local_fallback", "unavailable");
                tracing::warn!(error = %err, "cannot check a session: user store unavailable");
                Err(SessionError::Unavailable)
            }
        }
    }

    /// Forgets a token on this instance and tells every other edge to (logout).
    pub async fn revoke(&self, token: &VerifiedToken) {
        self.revoke_here(&token.sha256).await;
        self.broadcast(TokenRevoked {
            token_sha256: token.sha256.clone(),
            expires_at_ms: token.expires_at.timestamp_millis(),
            ..TokenRevoked::default()
        })
        .await;
    }

    /// Ends, on this instance and (broadcast) every other edge, every session of `user` whose
    /// token was issued before `valid_after_ms`.
    pub async fn end_all(&self, user: UserId, valid_after_ms: i64) {
        self.end_all_here(user, valid_after_ms).await;
        self.broadcast(TokenRevoked {
            user_id: user.to_string(),
            valid_after_ms,
            ..TokenRevoked::default()
        })
        .await;
    }

    async fn broadcast(&self, notice: TokenRevoked) {
        if let Err(err) = self
            .nats
            .publish(subjects::AUTH_REVOKED, notice.encode_to_vec().into())
            .await
        {
            // The stored event still reaches the cache service, which broadcasts again.
            tracing::warn!(error = %err, "could not broadcast a revocation");
        }
    }

    async fn end_all_here(&self, user: UserId, valid_after_ms: i64) {
        let current = self.epochs.get(&user).await.unwrap_or(i64::MIN);
        if valid_after_ms > current {
            self.epochs.insert(user, valid_after_ms).await;
        }
    }

    /// Whether this instance heard that the token's sessions were ended.
    async fn ended_here(&self, token: &VerifiedToken) -> bool {
        self.epochs
            .get(&token.user_id)
            .await
            .is_some_and(|epoch| token.issued_at.timestamp_millis() < epoch)
    }

    async fn revoke_here(&self, sha256: &str) {
        self.revoked.insert(sha256.to_owned(), ()).await;
        self.cache.invalidate(sha256).await;
    }

    async fn apply_notice(&self, notice: &TokenRevoked) {
        if !notice.token_sha256.is_empty() {
            self.revoke_here(&notice.token_sha256).await;
        }
        if let Ok(user) = notice.user_id.parse::<UserId>() {
            self.end_all_here(user, notice.valid_after_ms).await;
        }
    }

    /// Listens to `auth.revoked` until shutdown, dropping revoked sessions from this instance.
    pub async fn follow_revocations(self, shutdown: CancellationToken) {
        let this = &self;
        sidechain_infra::nats::follow_subject(
            &self.nats,
            subjects::AUTH_REVOKED,
            &shutdown,
            move |message| async move {
                match TokenRevoked::decode(message.payload) {
                    Ok(notice) => this.apply_notice(&notice).await,
                    Err(err) => tracing::warn!(error = %err, "undecodable revocation notice"),
                }
            },
        )
        .await;
    }
}
