//! Access tokens: HS256 JWTs signed with `JWT_SECRET`.
//!
//! Verification accepts HS256 only, so `alg: none` and algorithm-confusion tokens fail, and
//! requires `exp`, `iat`, `sub` and `jti`. Verifying is cheap (one HMAC); whether the session is
//! still alive (not revoked, user exists) is the session cache's job ([`super::sessions`]).

use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use sidechain_events::UserId;

/// Clock skew tolerated between edge instances.
const LEEWAY_SECONDS: u64 = 5;

/// The claims of our tokens. `sub` and `user_id` both carry the user id (the plugin reads the
/// latter).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Subject: the user id.
    pub sub: String,
    /// The user id again, for clients that read it by this name.
    pub user_id: String,
    /// Username at issue time.
    pub username: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// Token id, used to revoke it.
    pub jti: String,
}

/// A token whose signature and expiry checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// Its owner.
    pub user_id: UserId,
    /// Owner's username at issue time.
    pub username: String,
    /// The `jti` claim.
    pub token_id: String,
    /// The `exp` claim.
    pub expires_at: DateTime<Utc>,
    /// Hex SHA-256 of the token text: the key under which its session is cached.
    pub sha256: String,
}

/// A freshly issued token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The compact JWT.
    pub token: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// Why a token was refused. The client is told only that it is invalid or expired.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Past its `exp`.
    #[error("token expired")]
    Expired,
    /// Bad signature, algorithm, shape or claims.
    #[error("token invalid")]
    Invalid,
}

/// Issues and verifies tokens.
#[derive(Clone)]
pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl TokenService {
    /// Tokens signed with `secret`, valid for `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.set_required_spec_claims(&["exp", "iat", "sub", "jti"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    /// Signs a token for the user.
    pub fn issue(
        &self,
        user_id: UserId,
        username: &str,
    ) -> Result<IssuedToken, jsonwebtoken::errors::Error> {
        let now = Utc::now();
        let ttl = chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::hours(24));
        let expires_at = now + ttl;
        let claims = Claims {
            sub: user_id.to_string(),
            user_id: user_id.to_string(),
            username: username.to_owned(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok(IssuedToken {
            token,
            expires_at: Utc
                .timestamp_opt(claims.exp, 0)
                .single()
                .unwrap_or(expires_at),
        })
    }

    /// Checks signature, algorithm, expiry and claims.
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|err| match err.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        let claims = data.claims;
        let user_id: UserId = claims.sub.parse().map_err(|_| TokenError::Invalid)?;
        if claims.user_id != claims.sub {
            return Err(TokenError::Invalid);
        }
        let expires_at = Utc
            .timestamp_opt(claims.exp, 0)
            .single()
            .ok_or(TokenError::Invalid)?;
        Ok(VerifiedToken {
            user_id,
            username: claims.username,
            token_id: claims.jti,
            expires_at,
            sha256: token_sha256(token),
        })
    }
}

/// Hex SHA-256 of a token: how tokens are named in caches, events and logs (never the token).
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn b64(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn service() -> TokenService {
        TokenService::new(SECRET, Duration::from_secs(3600))
    }

    #[test]
    fn an_issued_token_verifies_with_its_claims() {
        let user = UserId::new();
        let issued = service().issue(user, "loopmaker").expect("issue");
        let verified = service().verify(&issued.token).expect("verify");
        assert_eq!(verified.user_id, user);
        assert_eq!(verified.username, "loopmaker");
        assert_eq!(verified.expires_at, issued.expires_at);
        assert_eq!(verified.sha256, token_sha256(&issued.token));
    }

    #[test]
    fn a_token_signed_with_another_secret_is_invalid() {
        let other = TokenService::new(b"another-secret-another-secret-xx", Duration::from_secs(60));
        let issued = other.issue(UserId::new(), "x").expect("issue");
        assert_eq!(service().verify(&issued.token), Err(TokenError::Invalid));
    }

    #[test]
    fn alg_none_is_rejected() {
        let user = UserId::new().to_string();
        let now = Utc::now().timestamp();
        let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
        let claims = b64(
            format!(r#"{{"sub":"{user}","user_id":"{user}","username":"x","iat":{now},"exp":{},"jti":"j"}}"#, now + 600)
                .as_bytes(),
        );
        for token in [format!("{header}.{claims}."), format!("{header}.{claims}")] {
            assert_eq!(
                service().verify(&token),
                Err(TokenError::Invalid),
                "{token}"
            );
        }
    }

    #[test]
    fn other_algorithms_are_rejected_even_with_the_right_key() {
        let user = UserId::new();
        let claims = Claims {
            sub: user.to_string(),
            user_id: user.to_string(),
            username: "x".into(),
            iat: Utc::now().timestamp(),
            exp: Utc::now().timestamp() + 600,
            jti: "j".into(),
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .expect("sign");
        assert_eq!(service().verify(&token), Err(TokenError::Invalid));
    }

    #[test]
    fn expired_tokens_say_so() {
        let user = UserId::new();
        let past = Utc::now().timestamp() - 3600;
        let claims = Claims {
            sub: user.to_string(),
            user_id: user.to_string(),
            username: "x".into(),
            iat: past - 60,
            exp: past,
            jti: "j".into(),
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .expect("sign");
        assert_eq!(service().verify(&token), Err(TokenError::Expired));
    }

    #[test]
    fn a_tampered_payload_fails_the_signature() {
        let issued = service().issue(UserId::new(), "alice").expect("issue");
        let mut parts: Vec<&str> = issued.token.split('.').collect();
        let forged = b64(
            format!(r#"{{"sub":"{0}","user_id":"{0}","username":"mallory","iat":1,"exp":9999999999,"jti":"j"}}"#, UserId::new())
                .as_bytes(),
        );
        parts[1] = &forged;
        assert_eq!(service().verify(&parts.join(".")), Err(TokenError::Invalid));
    }

    #[test]
    fn garbage_is_invalid_not_a_panic() {
        for junk in ["", ".", "..", "a.b.c", "Bearer x", &"x".repeat(10_000)] {
            assert_eq!(
                service().verify(junk),
                Err(TokenError::Invalid),
                "{junk:.20}"
            );
        }
    }
}
