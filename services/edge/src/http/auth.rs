//! `/api/v1/auth/*`: register, login, refresh, me, logout.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use sidechain_events::UserId;
use sidechain_events::events::{Logout, SessionsEnded, UserRegistered, event::Payload};
use sidechain_events::rpc::UserRecord;
use sidechain_infra::users::{normalize_email, revoke_in_record};

use utoipa::ToSchema;

use super::extract::{ApiJson, AuthUser, Validate};
use super::validate;
use super::views::{
    ActionResponse, AuthEnvelope, AuthPayload, MeResponse, RefreshResponse, UserView,
};

use super::error::{ApiError, ErrorBody};
use crate::auth::jwt::{REFRESH_GRACE, TokenError};
use crate::events::{IdempotencyKey, Recorded};
use crate::rate_limit::Class;
use crate::state::AppState;

/// `POST /api/v1/auth/register`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// Unique, case-insensitive.
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// Unique, case-insensitive; 3–30 letters, digits, `_`, `-`.
    #[schema(pattern = r"^[A-Za-z0-9_-]{3,30}$")]
    pub username: String,
    /// 8–128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
    /// Shown in the UI; defaults to the username. At most 64 characters.
    #[schema(min_length = 1, max_length = 64)]
    pub display_name: Option<String>,
}

impl Validate for RegisterRequest {
    fn validate(&self) -> Result<(), ApiError> {
        validate::email(&normalize_email(&self.email))?;
        validate::username(&self.username)?;
        validate::password(&self.password)?;
        if let Some(name) = &self.display_name {
            validate::length("display_name", name, 1, 64)?;
            validate::plain_text("display_name", name)?;
        }
        Ok(())
    }
}

/// `PUT /api/v1/auth/password`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordChangeRequest {
    /// The password in use now.
    #[schema(min_length = 1, max_length = 1024)]
    pub current_password: String,
    /// The new password: 8–128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub new_password: String,
}

impl Validate for PasswordChangeRequest {
    fn validate(&self) -> Result<(), ApiError> {
        if self.current_password.is_empty() || self.current_password.len() > 1024 {
            return Err(ApiError::bad_request(
                "invalid_field",
                "current_password must be 1 to 1024 bytes",
            ));
        }
        validate::password(&self.new_password)
    }
}

/// `POST /api/v1/auth/login`: `email` or `username`, and `password`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Sign in by email…
    pub email: Option<String>,
    /// …or by username.
    pub username: Option<String>,
    /// The password.
    #[schema(min_length = 1, max_length = 1024)]
    pub password: String,
}

impl Validate for LoginRequest {
    fn validate(&self) -> Result<(), ApiError> {
        match (&self.email, &self.username) {
            (None, None) => Err(ApiError::bad_request(
                "invalid_request",
                "send email or username with the password",
            )),
            _ if self.password.is_empty() || self.password.len() > 1024 => Err(
                ApiError::bad_request("invalid_field", "password must be 1 to 1024 bytes"),
            ),
            _ => Ok(()),
        }
    }
}

fn token_error(err: jsonwebtoken::errors::Error) -> ApiError {
    tracing::error!(error = %err, "could not sign a token");
    ApiError::Internal
}

/// Creates an account and signs it in.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created and signed in", body = AuthEnvelope),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 409, description = "Username or email taken (`username_taken`, `email_taken`)", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, description = "Rate limited (auth class)", body = ErrorBody),
        (status = 503, description = "Accounts or event store unavailable", body = ErrorBody),
    ))]
pub async fn register(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<AuthEnvelope>), ApiError> {
    let password_hash = state.passwords.hash(body.password).await.map_err(|err| {
        tracing::error!(error = %err, "password hashing failed");
        ApiError::Internal
    })?;
    let user_id = UserId::new();
    let display_name = body
        .display_name
        .map(|n| n.trim().to_owned())
        .unwrap_or_else(|| body.username.clone());
    let record = UserRecord {
        id: user_id.to_string(),
        username: body.username.clone(),
        email: normalize_email(&body.email),
        display_name: display_name.clone(),
        password_hash,
        created_at_ms: sidechain_events::now_ms(),
        ..UserRecord::default()
    };
    state.users.register(&record).await?;
    let event = Payload::UserRegistered(UserRegistered {
        user_id: record.id.clone(),
        username: record.username.clone(),
        display_name,
    });
    if let Err(err) = state
        .events
        .publish(
            sidechain_events::EventId::new(),
            user_id,
            &record.username,
            event,
        )
        .await
    {
        // Nothing half-written: without its event the account is withdrawn.
        state.users.unregister(&record).await;
        return Err(err.into());
    }
    let issued = state
        .tokens
        .issue(user_id, &record.username, None)
        .map_err(token_error)?;
    tracing::info!(user_id = %user_id, "account registered");
    Ok((
        StatusCode::CREATED,
        Json(AuthEnvelope {
            auth: AuthPayload {
                token: issued.token,
                user: UserView::own(&record),
                expires_at: issued.expires_at,
            },
        }),
    ))
}

/// Signs in with email or username and password.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = AuthEnvelope),
        (status = 400, body = ErrorBody),
        (status = 401, description = "Wrong credentials (`invalid_credentials`); never says which part", body = ErrorBody),
        (status = 429, description = "Rate limited (auth class)", body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
pub async fn login(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Json<AuthEnvelope>, ApiError> {
    let login = body
        .email
        .as_deref()
        .or(body.username.as_deref())
        .unwrap_or_default();
    let login = login.trim();
    let user = state.users.by_login(login).await?;
    // Per account, whatever the address or the spelling (username or email): guessing one
    // user's password from many addresses meets a backoff (the auth class limits each address
    // on its own). Unknown logins are limited by their text, so they answer the same way.
    let account = match &user {
        Some(user) => format!("account:{}", user.id),
        None => format!(
            "login:{}",
            hex::encode(Sha256::digest(login.to_lowercase()))
        ),
    };
    let attempt = state.limiter.check(Class::Login, &account).await;
    if !attempt.allowed {
        tracing::info!("sign-in attempts on one account limited");
        return Err(ApiError::RateLimited {
            retry_after: attempt.retry_after,
        });
    }
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    // Always verify (against a decoy when the user is unknown) so timing reveals nothing.
    let verified = state.passwords.verify(body.password, hash).await;
    let user = user.filter(|_| verified).ok_or(ApiError::Unauthorized {
        code: "invalid_credentials",
        message: "wrong username, email or password".into(),
    })?;
    let user_id: UserId = user.id.parse().map_err(|_| ApiError::Internal)?;
    let issued = state
        .tokens
        .issue(user_id, &user.username, None)
        .map_err(token_error)?;
    Ok(Json(AuthEnvelope {
        auth: AuthPayload {
            token: issued.token,
            user: UserView::own(&user),
            expires_at: issued.expires_at,
        },
    }))
}

async fn own_record(state: &AppState, user: &AuthUser) -> Result<UserRecord, ApiError> {
    state
        .users
        .by_id(user.session.user_id)
        .await?
        .ok_or_else(|| TokenError::Invalid.into())
}

/// `POST /api/v1/auth/refresh`: the token to exchange, when it is not in the header (the
/// plugin sends it here and no `Authorization` header).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RefreshRequest {
    /// The token to exchange (may have expired less than 15 minutes ago).
    pub token: Option<String>,
}

/// The token a refresh exchanges: from the `Authorization` header (web app, API clients) or
/// the body's `token` (the plugin). Both may be sent if they agree.
fn refresh_token(headers: &HeaderMap, body: &Bytes) -> Result<String, ApiError> {
    let from_header = match headers.get(AUTHORIZATION) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .map(|t| t.trim().to_owned())
                .ok_or(ApiError::from(TokenError::Invalid))?,
        ),
    };
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let json = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                let v = v.trim();
                v.eq_ignore_ascii_case("application/json") || v.ends_with("+json")
            });
        if !json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let request: RefreshRequest = serde_json::from_slice(body).map_err(|err| {
            let code = if err.is_data() {
                "invalid_request"
            } else {
                "malformed_json"
            };
            ApiError::bad_request(code, format!("request body: {err}"))
        })?;
        request.token.map(|t| t.trim().to_owned())
    };
    match (from_header, from_body) {
        (Some(header), Some(body)) if header != body => Err(ApiError::bad_request(
            "conflicting_tokens",
            "the Authorization header and the body carry different tokens; send one",
        )),
        (Some(token), _) | (None, Some(token)) if !token.is_empty() => Ok(token),
        _ => Err(ApiError::Unauthorized {
            code: "missing_token",
            message:
                "send the token as Authorization: Bearer <token> or in the body as {\"token\"}"
                    .into(),
        }),
    }
}

/// Exchanges a token for a fresh one and ends the old one (refresh tokens rotate: a stolen
/// token stops working once its owner refreshes). The token comes in the `Authorization`
/// header or the body's `token`; one that expired less than [`REFRESH_GRACE`] ago is still
/// accepted here. The new token belongs to the same session, which ends
/// `SESSION_MAX_LIFETIME` after the password sign-in whatever the refreshes.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth",
    request_body(content = Option<RefreshRequest>, description = "`{token}` when no Authorization header is sent (the plugin's way)"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "New token", body = RefreshResponse),
        (status = 400, description = "Malformed body, or header and body disagree (`conflicting_tokens`)", body = ErrorBody),
        (status = 401, description = "No token, invalid, expired beyond the grace, revoked, or the session is too old (`session_expired`)", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn refresh(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<([(HeaderName, HeaderValue); 1], Json<RefreshResponse>), ApiError> {
    let token = refresh_token(&headers, &body)?;
    let token = state.tokens.verify_for_refresh(&token, REFRESH_GRACE)?;
    let session = state.sessions.check(&token).await?;
    tracing::Span::current().record("user_id", tracing::field::display(session.user_id));
    let user = AuthUser { session, token };
    if !state.tokens.session_is_current(&user.token) {
        return Err(ApiError::Unauthorized {
            code: "session_expired",
            message: "this session is too old to refresh; sign in again".into(),
        });
    }
    let record = own_record(&state, &user).await?;
    let issued = state
        .tokens
        .issue(
            user.session.user_id,
            &record.username,
            Some(user.token.auth_time),
        )
        .map_err(token_error)?;
    // The new token is handed out only once the old one's end is stored.
    end_token(&state, &user, &IdempotencyKey::NONE).await?;
    // A token sent in the body is a credential too: no cache may keep the answer.
    Ok((
        [(CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(RefreshResponse {
            token: issued.token,
            expires_at: issued.expires_at,
            user: UserView::own(&record),
        }),
    ))
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, body = MeResponse), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn me(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
) -> Result<Json<MeResponse>, ApiError> {
    let record = own_record(&state, &user).await?;
    Ok(Json(MeResponse {
        user: UserView::own(&record),
    }))
}

/// Revokes the token used for this request, on every edge instance within a second.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries store one event")),
    responses((status = 422, description = "Idempotency-Key already used for a different request", body = ErrorBody), (status = 200, description = "Token revoked", body = ActionResponse), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn logout(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
) -> Result<Json<ActionResponse>, ApiError> {
    let recorded = end_token(&state, &user, &key).await?;
    Ok(Json(ActionResponse::new(recorded, user.session.user_id)))
}

/// Ends the token `user` called with: stores its `logout` event, writes the revocation into the
/// account (the durable copy, which survives a Redis wipe), then drops it from every edge's
/// session cache.
async fn end_token(
    state: &AppState,
    user: &AuthUser,
    key: &IdempotencyKey,
) -> Result<Recorded, ApiError> {
    // Remembered past the token's expiry for as long as a refresh may still present it.
    let remember_until = user.token.expires_at
        + chrono::Duration::from_std(REFRESH_GRACE).unwrap_or_default()
        + chrono::Duration::seconds(5);
    let payload = Payload::Logout(Logout {
        token_id: user.token.token_id.clone(),
        token_sha256: user.token.sha256.clone(),
        expires_at_ms: remember_until.timestamp_millis(),
    });
    // Keyed per token: one logout with a reused key must not swallow another token's.
    let key = key.for_target(&user.token.token_id);
    let recorded = state.record(&user.session, &key, payload).await?;
    let (token_id, expires_at_ms) = (
        user.token.token_id.as_str(),
        remember_until.timestamp_millis(),
    );
    state
        .users
        .modify(user.session.user_id, |record| {
            revoke_in_record(record, token_id, expires_at_ms, sidechain_events::now_ms());
        })
        .await?;
    state.sessions.revoke(&user.token).await;
    Ok(recorded)
}

/// Now, as a sessions-valid-after epoch: whole seconds, like a token's `iat`, so a token issued
/// in this second after the change (the one the change returns) is alive.
fn epoch_now() -> i64 {
    chrono::Utc::now().timestamp() * 1000
}

/// Ends every session of the user, then records the epoch in the account, so it holds even
/// if every cache is lost. The event comes first: if storing the account change fails after
/// it, the sessions are ended anyway (the safe side) and the client may retry.
async fn end_every_session(
    state: &AppState,
    user: &AuthUser,
    key: &IdempotencyKey,
    reason: &str,
) -> Result<Recorded, ApiError> {
    let valid_after_ms = epoch_now();
    let payload = Payload::SessionsEnded(SessionsEnded {
        valid_after_ms,
        reason: reason.to_owned(),
    });
    let recorded = state.record(&user.session, key, payload).await?;
    state
        .sessions
        .end_all(user.session.user_id, valid_after_ms)
        .await;
    state
        .users
        .modify(user.session.user_id, |record| {
            record.sessions_valid_after_ms = record.sessions_valid_after_ms.max(valid_after_ms);
        })
        .await?
        .ok_or_else(|| ApiError::from(TokenError::Invalid))?;
    Ok(recorded)
}

/// Signs out everywhere: every token of the caller issued until now stops working, on every
/// edge, including the one this request came with.
#[utoipa::path(post, path = "/api/v1/auth/logout-all", tag = "auth",
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries store one event")),
    responses((status = 200, description = "Every session ended", body = ActionResponse),
        (status = 401, body = ErrorBody), (status = 422, description = "Idempotency-Key already used for a different request", body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn logout_all(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
) -> Result<Json<ActionResponse>, ApiError> {
    let recorded = end_every_session(&state, &user, &key, "logout_all").await?;
    Ok(Json(ActionResponse::new(recorded, user.session.user_id)))
}

/// Changes the password (the current one is required) and ends every other session; answers
/// with a fresh token for this client.
#[utoipa::path(put, path = "/api/v1/auth/password", tag = "auth",
    security(("bearer" = [])),
    request_body = PasswordChangeRequest,
    responses((status = 200, description = "Changed; other sessions ended", body = RefreshResponse),
        (status = 400, body = ErrorBody),
        (status = 401, description = "Wrong current password (`invalid_credentials`) or no valid token", body = ErrorBody),
        (status = 429, description = "Too many attempts on this account", body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn change_password(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    ApiJson(body): ApiJson<PasswordChangeRequest>,
) -> Result<Json<RefreshResponse>, ApiError> {
    // Guessing the current password here meets the same per-account backoff as sign-in.
    let attempt = state
        .limiter
        .check(Class::Login, &format!("account:{}", user.session.user_id))
        .await;
    if !attempt.allowed {
        return Err(ApiError::RateLimited {
            retry_after: attempt.retry_after,
        });
    }
    let current = own_record(&state, &user).await?;
    if !state
        .passwords
        .verify(body.current_password, Some(current.password_hash.clone()))
        .await
    {
        return Err(ApiError::Unauthorized {
            code: "invalid_credentials",
            message: "the current password is wrong".into(),
        });
    }
    let new_hash = state
        .passwords
        .hash(body.new_password)
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "password hashing failed");
            ApiError::Internal
        })?;
    // Sessions end before the password changes: if the second step fails the client retries
    // with the same current password, and no session outlives a change that happened.
    end_every_session(&state, &user, &IdempotencyKey::NONE, "password_changed").await?;
    state
        .users
        .set_password_hash(user.session.user_id, &new_hash)
        .await?;
    let issued = state
        .tokens
        .issue(user.session.user_id, &current.username, None)
        .map_err(token_error)?;
    tracing::info!(user_id = %user.session.user_id, "password changed; every other session ended");
    Ok(Json(RefreshResponse {
        token: issued.token,
        expires_at: issued.expires_at,
        user: UserView::own(&current),
    }))
}
