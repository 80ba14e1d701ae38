//! The one error shape of the API: `{"error":"<snake_code>","message":"…","request_id":"…"}`.
//!
//! Handlers return [`ApiError`]; its status says what the client should do (fix the request,
//! authenticate, retry later). Internal causes are logged where they happen and never reach
//! the body.
//!
//! The layers below HTTP return their own errors ([`NotStored`], [`CacheError`],
//! [`SessionError`], …); the `From` impls at the end of this file are the one place where they
//! become answers.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use sidechain_infra::users::{RegisterError, StoreError};

use super::request_id::current_request_id;
use crate::auth::jwt::TokenError;
use crate::auth::sessions::SessionError;
use crate::cache_client::CacheError;
use crate::events::{InvalidIdempotencyKey, NotStored, RecordError};
use crate::media::UploadError;
use crate::media_urls::MediaUrlRefused;

/// An error answered to the client.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or fails validation (400).
    #[error("{message}")]
    BadRequest {
        /// Machine-readable reason.
        code: &'static str,
        /// What to fix.
        message: String,
    },
    /// No valid credentials (401).
    #[error("{message}")]
    Unauthorized {
        /// `missing_token`, `invalid_token`, `token_revoked`, `invalid_credentials`.
        code: &'static str,
        /// Human text; never says which credential part was wrong.
        message: String,
    },
    /// Authenticated but not allowed (403).
    #[error("{0}")]
    Forbidden(String),
    /// The resource does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// Method not allowed on this path (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The resource already exists (409).
    #[error("{message}")]
    Conflict {
        /// e.g. `username_taken`.
        code: &'static str,
        /// Human text.
        message: String,
    },
    /// Well-formed but cannot be applied as sent (422).
    #[error("{message}")]
    Unprocessable {
        /// e.g. `idempotency_key_reused`.
        code: &'static str,
        /// Human text.
        message: String,
    },
    /// Body larger than allowed (413).
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Body is not JSON (415).
    #[error("expected a JSON body with Content-Type: application/json")]
    UnsupportedMediaType,
    /// An uploaded file is not of an accepted format (415).
    #[error("{0}")]
    UnsupportedFormat(String),
    /// The client took too long sending the request (408).
    #[error("{0}")]
    RequestTimeout(String),
    /// A byte range starting past the end of an object of `size` bytes (416).
    #[error("the requested range is outside the {size} bytes of the object")]
    RangeNotSatisfiable {
        /// The object's size.
        size: u64,
    },
    /// Too many requests (429); retry after the given delay.
    #[error("rate limit exceeded; retry in {} s", retry_after_secs(*retry_after))]
    RateLimited {
        /// When a request will be allowed again.
        retry_after: Duration,
    },
    /// A dependency is down or slow (503); retry after the given delay.
    #[error("{message}")]
    Unavailable {
        /// e.g. `event_store_unavailable`.
        code: &'static str,
        /// Human text.
        message: String,
        /// Suggested wait.
        retry_after: Duration,
    },
    /// A bug (500). The cause is logged with the request id.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// A validation failure.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// A dependency outage; clients retry after a second.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unavailable {
            code,
            message: message.into(),
            retry_after: Duration::from_secs(1),
        }
    }

    /// Status code of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType | ApiError::UnsupportedFormat(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `error` code of the body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Unauthorized { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Unprocessable { code, .. }
            | ApiError::Unavailable { code, .. } => code,
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType | ApiError::UnsupportedFormat(_) => {
                "unsupported_media_type"
            }
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Internal => "internal_error",
        }
    }
}

fn retry_after_secs(delay: Duration) -> u64 {
    // Round up, and never tell a client to retry "in 0 seconds".
    delay.as_secs() + u64::from(delay.subsec_nanos() > 0).max(u64::from(delay.is_zero()))
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Machine-readable snake_case code, e.g. `invalid_request`, `rate_limited`.
    #[schema(example = "invalid_request")]
    pub error: String,
    /// Human-readable explanation.
    pub message: String,
    /// The request id (also in the `X-Request-ID` header); quote it when reporting a problem.
    pub request_id: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code().to_owned(),
            message: self.to_string(),
            request_id: current_request_id().unwrap_or_default(),
        };
        let mut response = (self.status(), axum::Json(body)).into_response();
        let retry_after = match &self {
            ApiError::RateLimited { retry_after } | ApiError::Unavailable { retry_after, .. } => {
                Some(*retry_after)
            }
            _ => None,
        };
        if let Some(delay) = retry_after {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs(delay)),
            );
        }
        if matches!(self, ApiError::Unauthorized { .. }) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<MediaUrlRefused> for ApiError {
    fn from(refused: MediaUrlRefused) -> Self {
        ApiError::bad_request("invalid_field", refused.to_string())
    }
}

impl From<NotStored> for ApiError {
    fn from(_: NotStored) -> Self {
        ApiError::unavailable(
            "event_store_unavailable",
            "the change could not be recorded; retry shortly",
        )
    }
}

impl From<RecordError> for ApiError {
    fn from(err: RecordError) -> Self {
        match err {
            RecordError::NotStored(_) => ApiError::unavailable(
                "event_store_unavailable",
                "the change could not be recorded; retry shortly",
            ),
            RecordError::KeyReused => ApiError::Unprocessable {
                code: "idempotency_key_reused",
                message: "this Idempotency-Key was already used for a different request; \
                          use a new key for a new request"
                    .into(),
            },
        }
    }
}

impl From<UploadError> for ApiError {
    fn from(err: UploadError) -> Self {
        match err {
            UploadError::TooLarge { limit } => ApiError::PayloadTooLarge {
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
            },
            UploadError::Empty => ApiError::bad_request("empty_file", err.to_string()),
            UploadError::NotAudio => ApiError::UnsupportedFormat(err.to_string()),
            UploadError::Stalled(_) => ApiError::RequestTimeout(err.to_string()),
            UploadError::Spool(reason) | UploadError::StoreUnavailable(reason) => {
                tracing::warn!(error = %reason, "upload not stored");
                ApiError::unavailable(
                    "media_store_unavailable",
                    "the file could not be stored; retry shortly",
                )
            }
            UploadError::Record(err) => err.into(),
        }
    }
}

impl From<CacheError> for ApiError {
    fn from(err: CacheError) -> Self {
        match err {
            CacheError::Unavailable(_) => ApiError::unavailable(
                "feed_service_unavailable",
                "feeds are temporarily unavailable; retry shortly",
            ),
            CacheError::Degraded(message) => {
                ApiError::unavailable("feed_service_unavailable", message)
            }
            CacheError::NotFound(message) => ApiError::NotFound(message),
            CacheError::InvalidArgument(message) => {
                ApiError::bad_request("invalid_request", message)
            }
            CacheError::BadReply { .. } => ApiError::Internal,
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(err: TokenError) -> Self {
        match err {
            TokenError::Expired => ApiError::Unauthorized {
                code: "token_expired",
                message: "the token has expired; sign in again".into(),
            },
            TokenError::Invalid => ApiError::Unauthorized {
                code: "invalid_token",
                message: "the token is not valid; sign in again".into(),
            },
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(err: SessionError) -> Self {
        match err {
            SessionError::Revoked => ApiError::Unauthorized {
                code: "token_revoked",
                message: "this token was signed out; sign in again".into(),
            },
            SessionError::UnknownUser => TokenError::Invalid.into(),
            SessionError::Unavailable => ApiError::unavailable(
                "auth_unavailable",
                "sign-in checks are temporarily unavailable; retry shortly",
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        tracing::warn!(error = %err, "account store unavailable");
        ApiError::unavailable(
            "user_store_unavailable",
            "accounts are temporarily unavailable; retry shortly",
        )
    }
}

impl From<RegisterError> for ApiError {
    fn from(err: RegisterError) -> Self {
        match err {
            RegisterError::UsernameTaken => ApiError::Conflict {
                code: "username_taken",
                message: "that username is taken".into(),
            },
            RegisterError::EmailTaken => ApiError::Conflict {
                code: "email_taken",
                message: "an account with that email exists".into(),
            },
            RegisterError::Store(err) => err.into(),
        }
    }
}

impl From<InvalidIdempotencyKey> for ApiError {
    fn from(err: InvalidIdempotencyKey) -> Self {
        ApiError::bad_request("invalid_idempotency_key", err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_and_is_at_least_one_second() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(6)), 6);
    }

    #[test]
    fn a_rate_limit_error_carries_retry_after() {
        let response = ApiError::RateLimited {
            retry_after: Duration::from_millis(5200),
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "6");
    }
}
