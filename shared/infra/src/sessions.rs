//! Redis keys of sessions, shared by the cache service (which owns them) and the edge (which
//! reads revocations when the cache service cannot answer).

use redis::AsyncCommands as _;

use crate::redis::RedisConn;

/// A verified session, cached by the cache service: `jwt_cache:<sha256(token)>`.
pub fn jwt_cache_key(token_sha256: &str) -> String {
    format!("jwt_cache:{token_sha256}")
}

/// A revoked token, kept until it expires: `revoked:<jti>`.
pub fn revoked_key(token_id: &str) -> String {
    format!("revoked:{token_id}")
}

/// Whether the token with this `jti` was revoked.
pub async fn is_revoked(redis: &RedisConn, token_id: &str) -> redis::RedisResult<bool> {
    let mut conn = redis.clone();
    conn.exists(revoked_key(token_id)).await
}
