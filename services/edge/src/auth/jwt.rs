//! Access tokens: HS256 JWTs signed with `JWT_SECRET`.
//!
//! Verification accepts HS256 only, so `alg: none` and algorithm-confusion tokens fail, and
//! requires `exp`, `nbf`, `iat`, `sub`, `jti`, our issuer (`JWT_ISSUER`) and audience
//! (`JWT_AUDIENCE`). Verifying is cheap (one HMAC); whether the session is still alive (not
//! revoked, user exists) is the session cache's job ([`super::sessions`]).
//!
//! Key rotation: tokens name their key in the `kid` header (a short hash of the secret, which
//! reveals nothing of it). New tokens are signed with `JWT_SECRET`; tokens signed with a key in
//! `JWT_PREVIOUS_SECRETS` still verify, so a rotation is: add the new secret as `JWT_SECRET` and
//! the old one to `JWT_PREVIOUS_SECRETS`, deploy, and drop the old one after `JWT_TTL`.
//!
//! Sessions have an absolute lifetime: `auth_time` (when the user signed in with a password) is
//! carried through every refresh, and no token of the chain lives past `auth_time` +
//! `SESSION_MAX_LIFETIME`.

use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use sidechain_events::UserId;

/// Clock skew tolerated between edge instances.
const LEEWAY_SECONDS: u64 = 5;

/// How long after its expiry a token may still be exchanged by `POST /auth/refresh` (and only
/// there). A client that was asleep (a closed laptop, a DAW project left open overnight with the
/// plugin's timer suspended) wakes with a token that expired minutes ago; the grace lets it
/// refresh instead of signing in again. Everything else still applies: the session's absolute
/// lifetime, revocations (remembered this long past expiry, see `http::auth::end_token`) and
/// sign-out-everywhere. Fifteen minutes covers a suspended timer without making a stolen
/// expired token useful for long.
pub const REFRESH_GRACE: Duration = Duration::from_secs(15 * 60);

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
    /// Not valid before (seconds since the epoch): the issue time.
    pub nbf: i64,
    /// Issuer (`JWT_ISSUER`).
    pub iss: String,
    /// Audience (`JWT_AUDIENCE`).
    pub aud: String,
    /// When the user signed in with a password (seconds); kept through refreshes.
    pub auth_time: i64,
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
    /// The `iat` claim.
    pub issued_at: DateTime<Utc>,
    /// The `auth_time` claim: when the session began.
    pub auth_time: DateTime<Utc>,
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

/// What tokens are signed with and say about themselves (`JWT_*`, `SESSION_MAX_LIFETIME`).
#[derive(Clone)]
pub struct TokenSettings {
    /// Signs new tokens; verifies them.
    pub secret: Vec<u8>,
    /// Verify only: keys being rotated out.
    pub previous_secrets: Vec<Vec<u8>>,
    /// The `iss` of our tokens.
    pub issuer: String,
    /// The `aud` of our tokens.
    pub audience: String,
    /// Lifetime of one token.
    pub ttl: Duration,
    /// Lifetime of a session (a sign-in and its refreshes).
    pub max_session: Duration,
}

impl std::fmt::Debug for TokenSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSettings")
            .field("secret", &"[redacted]")
            .field("previous_secrets", &self.previous_secrets.len())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl", &self.ttl)
            .field("max_session", &self.max_session)
            .finish()
    }
}

/// The `kid` naming a key: 16 hex digits of its SHA-256.
fn key_id(secret: &[u8]) -> String {
    hex::encode(&Sha256::digest(secret)[..8])
}

/// Issues and verifies tokens.
#[derive(Clone)]
pub struct TokenService {
    encoding: EncodingKey,
    key_id: String,
    /// Every key that verifies, by `kid`; the current one first.
    decoding: Vec<(String, DecodingKey)>,
    validation: Validation,
    /// The same rules without the expiry check, for refreshes within [`REFRESH_GRACE`].
    validation_any_expiry: Validation,
    settings: TokenSettings,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TokenService {
    /// Tokens as `settings` say.
    pub fn new(settings: TokenSettings) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "sub", "jti", "iss", "aud"]);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        let mut validation_any_expiry = validation.clone();
        validation_any_expiry.validate_exp = false;
        let decoding = std::iter::once(&settings.secret)
            .chain(&settings.previous_secrets)
            .map(|secret| (key_id(secret), DecodingKey::from_secret(secret)))
            .collect();
        Self {
            encoding: EncodingKey::from_secret(&settings.secret),
            key_id: key_id(&settings.secret),
            decoding,
            validation,
            validation_any_expiry,
            settings,
        }
    }

    /// How long one token lives.
    pub fn ttl(&self) -> Duration {
        self.settings.ttl
    }

    /// Signs a token for the user. `session_began` is the sign-in a refresh continues (`None`
    /// for a sign-in now); the token never outlives that session's maximum lifetime.
    pub fn issue(
        &self,
        user_id: UserId,
        username: &str,
        session_began: Option<DateTime<Utc>>,
    ) -> Result<IssuedToken, jsonwebtoken::errors::Error> {
        let now = Utc::now();
        let auth_time = session_began.unwrap_or(now);
        let ttl =
            chrono::Duration::from_std(self.settings.ttl).unwrap_or(chrono::Duration::hours(24));
        let max_session = chrono::Duration::from_std(self.settings.max_session)
            .unwrap_or(chrono::Duration::days(30));
        let expires_at = (now + ttl).min(auth_time + max_session);
        let claims = Claims {
            sub: user_id.to_string(),
            user_id: user_id.to_string(),
            username: username.to_owned(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            jti: uuid::Uuid::new_v4().to_string(),
            nbf: now.timestamp(),
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            auth_time: auth_time.timestamp(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.key_id.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)?;
        Ok(IssuedToken {
            token,
            expires_at: Utc
                .timestamp_opt(claims.exp, 0)
                .single()
                .unwrap_or(expires_at),
        })
    }

    /// Whether the session a token belongs to may still be refreshed.
    pub fn session_is_current(&self, token: &VerifiedToken) -> bool {
        let max_session = chrono::Duration::from_std(self.settings.max_session)
            .unwrap_or(chrono::Duration::days(30));
        Utc::now() < token.auth_time + max_session
    }

    /// Checks signature (with the key its `kid` names), algorithm, expiry and claims.
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        self.decode(token, &self.validation)
    }

    /// Like [`Self::verify`], but a token that expired less than `grace` ago still verifies
    /// (refresh only: see [`REFRESH_GRACE`]).
    pub fn verify_for_refresh(
        &self,
        token: &str,
        grace: Duration,
    ) -> Result<VerifiedToken, TokenError> {
        let verified = self.decode(token, &self.validation_any_expiry)?;
        let grace = chrono::Duration::from_std(grace).unwrap_or_default()
            + chrono::Duration::seconds(LEEWAY_SECONDS as i64);
        if verified.expires_at + grace < Utc::now() {
            return Err(TokenError::Expired);
        }
        Ok(verified)
    }

    fn decode(&self, token: &str, validation: &Validation) -> Result<VerifiedToken, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        let key = match &header.kid {
            Some(kid) => self
                .decoding
                .iter()
                .find(|(id, _)| id == kid)
                .map(|(_, key)| key)
                .ok_or(TokenError::Invalid)?,
            None => return Err(TokenError::Invalid),
        };
        let data =
            jsonwebtoken::decode::<Claims>(token, key, validation).map_err(|err| {
                match err.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                    _ => TokenError::Invalid,
                }
            })?;
        let claims = data.claims;
        let user_id: UserId = claims.sub.parse().map_err(|_| TokenError::Invalid)?;
        if claims.user_id != claims.sub {
            return Err(TokenError::Invalid);
        }
        let time = |seconds: i64| {
            Utc.timestamp_opt(seconds, 0)
                .single()
                .ok_or(TokenError::Invalid)
        };
        Ok(VerifiedToken {
            user_id,
            username: claims.username,
            token_id: claims.jti,
            expires_at: time(claims.exp)?,
            sha256: token_sha256(token),
            issued_at: time(claims.iat)?,
            auth_time: time(claims.auth_time)?,
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

    fn settings(secret: &[u8]) -> TokenSettings {
        TokenSettings {
            secret: secret.to_vec(),
            previous_secrets: Vec::new(),
            issuer: "sidechain".into(),
            audience: "sidechain-api".into(),
            ttl: Duration::from_secs(3600),
            max_session: Duration::from_secs(30 * 86_400),
        }
    }

    fn service() -> TokenService {
        TokenService::new(settings(SECRET))
    }

    /// Claims as we issue them, for tokens built by hand.
    fn claims(user: UserId, iat: i64, exp: i64) -> Claims {
        Claims {
            sub: user.to_string(),
            user_id: user.to_string(),
            username: "x".into(),
            iat,
            exp,
            jti: "j".into(),
            nbf: iat,
            iss: "sidechain".into(),
            aud: "sidechain-api".into(),
            auth_time: iat,
        }
    }

    fn sign(claims: &Claims, secret: &[u8]) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key_id(secret));
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).expect("sign")
    }

    #[test]
    fn an_issued_token_verifies_with_its_claims() {
        let user = UserId::new();
        let issued = service().issue(user, "loopmaker", None).expect("issue");
        let verified = service().verify(&issued.token).expect("verify");
        assert_eq!(verified.user_id, user);
        assert_eq!(verified.username, "loopmaker");
        assert_eq!(verified.expires_at, issued.expires_at);
        assert_eq!(verified.sha256, token_sha256(&issued.token));
    }

    #[test]
    fn a_token_signed_with_another_secret_is_invalid() {
        let other = TokenService::new(settings(b"another-secret-another-secret-xx"));
        let issued = other.issue(UserId::new(), "x", None).expect("issue");
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
        let now = Utc::now().timestamp();
        let mut header = Header::new(Algorithm::HS512);
        header.kid = Some(key_id(SECRET));
        let token = jsonwebtoken::encode(
            &header,
            &claims(UserId::new(), now, now + 600),
            &EncodingKey::from_secret(SECRET),
        )
        .expect("sign");
        assert_eq!(service().verify(&token), Err(TokenError::Invalid));
    }

    #[test]
    fn expired_tokens_say_so() {
        let past = Utc::now().timestamp() - 3600;
        let token = sign(&claims(UserId::new(), past - 60, past), SECRET);
        assert_eq!(service().verify(&token), Err(TokenError::Expired));
    }

    #[test]
    fn a_just_expired_token_may_refresh_within_the_grace_and_not_after() {
        let now = Utc::now().timestamp();
        let user = UserId::new();
        let grace = Duration::from_secs(600);
        let just_expired = sign(&claims(user, now - 3600, now - 60), SECRET);
        assert_eq!(service().verify(&just_expired), Err(TokenError::Expired));
        let verified = service()
            .verify_for_refresh(&just_expired, grace)
            .expect("within the grace");
        assert_eq!(verified.user_id, user);
        let long_expired = sign(&claims(user, now - 7200, now - 601 - 60), SECRET);
        assert_eq!(
            service().verify_for_refresh(&long_expired, grace),
            Err(TokenError::Expired)
        );
        // The grace relaxes the expiry only: a forged token is still invalid.
        let forged = sign(
            &claims(user, now - 3600, now - 60),
            b"another-secret-another-secret-xx",
        );
        assert_eq!(
            service().verify_for_refresh(&forged, grace),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn a_tampered_payload_fails_the_signature() {
        let issued = service()
            .issue(UserId::new(), "alice", None)
            .expect("issue");
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

    #[test]
    fn tokens_of_a_previous_key_verify_during_a_rotation_and_unknown_keys_do_not() {
        const NEW: &[u8] = b"the-new-secret-the-new-secret-new";
        let old = service().issue(UserId::new(), "x", None).expect("issue");
        let rotated = TokenService::new(TokenSettings {
            previous_secrets: vec![SECRET.to_vec()],
            ..settings(NEW)
        });
        assert!(rotated.verify(&old.token).is_ok());
        let fresh = rotated.issue(UserId::new(), "x", None).expect("issue");
        assert!(rotated.verify(&fresh.token).is_ok());
        // The old key alone no longer accepts tokens of the new one.
        assert_eq!(service().verify(&fresh.token), Err(TokenError::Invalid));
        // After the rotation window the old key is dropped.
        assert_eq!(
            TokenService::new(settings(NEW)).verify(&old.token),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn issuer_audience_not_before_and_key_id_are_enforced() {
        let now = Utc::now().timestamp();
        let user = UserId::new();
        let good = claims(user, now, now + 600);
        assert!(service().verify(&sign(&good, SECRET)).is_ok());
        let cases = [
            Claims {
                iss: "someone-else".into(),
                ..good.clone()
            },
            Claims {
                aud: "another-api".into(),
                ..good.clone()
            },
            Claims {
                nbf: now + 600,
                ..good.clone()
            },
        ];
        for bad in cases {
            assert_eq!(
                service().verify(&sign(&bad, SECRET)),
                Err(TokenError::Invalid),
                "{bad:?}"
            );
        }
        let without_kid = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &good,
            &EncodingKey::from_secret(SECRET),
        )
        .expect("sign");
        assert_eq!(service().verify(&without_kid), Err(TokenError::Invalid));
    }

    #[test]
    fn a_session_has_an_absolute_lifetime_through_refreshes() {
        let user = UserId::new();
        let began = Utc::now() - chrono::Duration::days(30) + chrono::Duration::minutes(10);
        let refreshed = service().issue(user, "x", Some(began)).expect("issue");
        // The token is cut to the session's end, not the usual hour.
        let session_end = began + chrono::Duration::days(30);
        assert!(refreshed.expires_at <= session_end, "{refreshed:?}");
        let verified = service().verify(&refreshed.token).expect("verify");
        assert_eq!(verified.auth_time.timestamp(), began.timestamp());
        assert!(service().session_is_current(&verified));
        let ancient = VerifiedToken {
            auth_time: Utc::now() - chrono::Duration::days(31),
            ..verified
        };
        assert!(!service().session_is_current(&ancient));
    }
}
