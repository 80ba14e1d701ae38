//! How a request proves who it is: the `authenticate` layer verifies a bearer token once per
//! request (the rate limiter keys on it), and the [`AuthUser`] extractor checks the session on
//! routes that need a signed-in user.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::HeaderValue;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

use crate::auth::jwt::{TokenError, VerifiedToken};
use crate::auth::sessions::Session;
use crate::http::error::ApiError;
use crate::state::AppState;

/// What the `Authorization` header held.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// No header.
    Missing,
    /// A header that is not a valid, unexpired bearer token.
    Invalid(TokenError),
    /// A token with a good signature.
    Valid(VerifiedToken),
}

/// Layer: verifies the bearer token (if any) and leaves [`Credentials`] in the request. An
/// answer to a request that carried credentials is personal: it gets `Cache-Control: no-store`
/// so no shared cache or browser history keeps it.
pub async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let credentials = match request.headers().get(AUTHORIZATION) {
        None => Credentials::Missing,
        Some(value) => match value.to_str().ok().and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        }) {
            Some(token) => match state.tokens.verify(token.trim()) {
                Ok(verified) => Credentials::Valid(verified),
                Err(err) => Credentials::Invalid(err),
            },
            None => Credentials::Invalid(TokenError::Invalid),
        },
    };
    let personal = !matches!(credentials, Credentials::Missing);
    request.extensions_mut().insert(credentials);
    let mut response = next.run(request).await;
    if personal {
        response
            .headers_mut()
            .entry(CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
    }
    response
}

/// A signed-in caller with a live session.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The session (user id, username, …).
    pub session: Arc<Session>,
    /// The verified token it came with.
    pub token: VerifiedToken,
}

impl FromRequestParts<Arc<AppState>> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let credentials = parts
            .extensions
            .get::<Credentials>()
            .cloned()
            .unwrap_or(Credentials::Missing);
        let token = match credentials {
            Credentials::Missing => {
                return Err(ApiError::Unauthorized {
                    code: "missing_token",
                    message: "sign in: send Authorization: Bearer <token>".into(),
                });
            }
            Credentials::Invalid(err) => return Err(err.into()),
            Credentials::Valid(token) => token,
        };
        let session = state.sessions.check(&token).await?;
        tracing::Span::current().record("user_id", tracing::field::display(session.user_id));
        Ok(Self { session, token })
    }
}

/// A caller who may or may not be signed in (public reads that personalise when possible).
/// A token that is sent must still be valid.
#[derive(Debug, Clone)]
pub struct MaybeAuthUser(pub Option<AuthUser>);

impl FromRequestParts<Arc<AppState>> for MaybeAuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Credentials>() {
            None | Some(Credentials::Missing) => Ok(Self(None)),
            Some(_) => AuthUser::from_request_parts(parts, state)
                .await
                .map(|u| Self(Some(u))),
        }
    }
}
