//! The session check behind every authenticated edge request (`auth.session`).
//!
//! The edge has verified the token's signature and expiry; this checks that the session is
//! alive: not revoked (`revoked:<jti>`, written when a logout is applied), not issued before its
//! user's sessions ended (`session_epoch:<user>`, and the account's own epoch, which survives a
//! Redis wipe) and its user exists (the `users` bucket). A live session is cached in `jwt_cache:<sha256(token)>` for
//! `SESSION_CACHE_TTL` (5 min, never past the token's expiry); a logout deletes it. The cache
//! write is a script that refuses if the revocation landed meanwhile.

use std::time::Duration;

use prost::Message as _;
use redis::AsyncCommands as _;
use sidechain_events::UserId;
use sidechain_events::rpc::{
    ErrorCode, RpcError, SessionReply, SessionRequest, SessionStatus, UserProfile,
};
use sidechain_infra::redis::RedisConn;
use sidechain_infra::users::{UserStore, record_revokes};

use crate::keys;
use crate::metrics::CacheMetrics;

/// Answers session checks.
#[derive(Debug, Clone)]
pub struct Sessions {
    redis: RedisConn,
    users: UserStore,
    ttl: Duration,
    remember: std::sync::Arc<redis::Script>,
    metrics: CacheMetrics,
}

fn reply(status: SessionStatus, user: Option<UserProfile>) -> SessionReply {
    SessionReply {
        status: status as i32,
        user,
        error: None,
    }
}

fn unavailable() -> SessionReply {
    SessionReply {
        status: SessionStatus::Unspecified as i32,
        user: None,
        error: Some(RpcError {
            code: ErrorCode::Unavailable as i32,
            message: "session store unavailable".to_owned(),
        }),
    }
}

impl Sessions {
    /// Session checks over `redis` and the `users` bucket.
    pub fn new(redis: RedisConn, users: UserStore, ttl: Duration, metrics: CacheMetrics) -> Self {
        Self {
            redis,
            users,
            ttl,
            remember: std::sync::Arc::new(redis::Script::new(include_str!(
                "read_models/lua/remember_session.lua"
            ))),
            metrics,
        }
    }

    /// Checks one session.
    pub async fn check(&self, request: &SessionRequest) -> SessionReply {
        match self.check_inner(request).await {
            Ok(reply) => reply,
            Err(err) => {
                tracing::warn!(error = %err, "session check failed");
                self.metrics.session("unavailable");
                unavailable()
            }
        }
    }

    async fn check_inner(&self, request: &SessionRequest) -> Result<SessionReply, String> {
        let mut conn = self.redis.clone();
        let cache_key = keys::jwt_cache(&request.token_sha256);
        let Ok(user_id) = request.user_id.parse::<UserId>() else {
            self.metrics.session("unknown_user");
            return Ok(reply(SessionStatus::UnknownUser, None));
        };
        let (cached, epoch): (Option<Vec<u8>>, Option<i64>) = redis::pipe()
            .get(&cache_key)
            .get(keys::session_epoch(user_id))
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        if epoch.is_some_and(|epoch| request.issued_at_ms < epoch) {
            self.metrics.session("revoked");
            return Ok(reply(SessionStatus::Revoked, None));
        }
        if let Some(profile) = cached.and_then(|bytes| UserProfile::decode(bytes.as_slice()).ok()) {
            self.metrics.session("hit");
            return Ok(reply(SessionStatus::Active, Some(profile)));
        }
        let revoked_key = keys::revoked(&request.token_id);
        let revoked: bool = conn.exists(&revoked_key).await.map_err(|e| e.to_string())?;
        if revoked {
            self.metrics.session("revoked");
            return Ok(reply(SessionStatus::Revoked, None));
        }
        let Some(record) = self
            .users
            .account(user_id)
            .await
            .map_err(|e| e.to_string())?
        else {
            self.metrics.session("unknown_user");
            return Ok(reply(SessionStatus::UnknownUser, None));
        };
        if record_revokes(&record, &request.token_id, request.issued_at_ms) {
            self.metrics.session("revoked");
            return Ok(reply(SessionStatus::Revoked, None));
        }
        let profile = UserProfile {
            id: record.id,
            username: record.username,
            display_name: record.display_name,
            created_at_ms: record.created_at_ms,
        };
        let until_expiry =
            u64::try_from(request.expires_at_ms - sidechain_events::now_ms()).unwrap_or(0);
        let ttl_ms = until_expiry.min(u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX));
        if ttl_ms > 0 {
            let stored: i64 = self
                .remember
                .key(&revoked_key)
                .key(&cache_key)
                .arg(profile.encode_to_vec())
                .arg(ttl_ms)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            if stored == 0 {
                self.metrics.session("revoked");
                return Ok(reply(SessionStatus::Revoked, None));
            }
        }
        self.metrics.session("active");
        Ok(reply(SessionStatus::Active, Some(profile)))
    }
}
