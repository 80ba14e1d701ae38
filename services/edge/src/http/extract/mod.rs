//! Extractors that turn every malformed input into an [`ApiError`] (never axum's plain-text
//! rejections), and run the body's own validation: JSON bodies, queries, paths, pages,
//! `Idempotency-Key`, and (in [`auth`]) the caller's credentials and session.

pub mod auth;

pub use auth::{AuthUser, MaybeAuthUser};

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::events::IdempotencyKey;
use crate::http::error::ApiError;
use crate::page::{DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET, Page};

/// Checks a decoded request body beyond its types (lengths, ranges, formats).
pub trait Validate {
    /// `Err` describes the first problem found.
    fn validate(&self) -> Result<(), ApiError>;
}

/// A JSON body, decoded and validated.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned + Validate,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = request
            .extensions()
            .get::<BodyLimit>()
            .map_or(0, |limit| limit.0);
        let axum::Json(value) = axum::Json::<T>::from_request(request, state)
            .await
            .map_err(|rejection| json_rejection(rejection, limit))?;
        value.validate()?;
        Ok(Self(value))
    }
}

/// The configured body limit, put in request extensions so 413 errors can state it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

fn json_rejection(rejection: JsonRejection, limit: usize) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        JsonRejection::JsonSyntaxError(err) => ApiError::bad_request(
            "malformed_json",
            format!(
                "request body is not valid JSON: {}",
                inner_text(&err.body_text())
            ),
        ),
        JsonRejection::JsonDataError(err) => {
            ApiError::bad_request("invalid_request", inner_text(&err.body_text()))
        }
        JsonRejection::BytesRejection(err) if err.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge { limit }
        }
        other => ApiError::bad_request("invalid_request", other.body_text()),
    }
}

/// axum prefixes serde's message with its own sentence; keep serde's part, which names the
/// field and the problem ("missing field `audio_url`", "invalid type: …").
fn inner_text(text: &str) -> String {
    text.split_once(": ")
        .map_or(text, |(_, rest)| rest)
        .to_owned()
}

/// Query parameters, decoded.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|rejection: QueryRejection| {
                ApiError::bad_request("invalid_query", inner_text(&rejection.body_text()))
            })
    }
}

/// Path parameters, decoded (ids that are not UUIDs get 400 `invalid_id`).
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|rejection: PathRejection| {
                ApiError::bad_request(
                    "invalid_id",
                    format!(
                        "path parameter is invalid: {}",
                        inner_text(&rejection.body_text())
                    ),
                )
            })
    }
}

/// `?limit=&offset=` of list endpoints.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1–100 (default 20).
    pub limit: Option<u32>,
    /// Items to skip, 0–10000 (default 0).
    pub offset: Option<u32>,
}

impl PageQuery {
    /// Applies defaults and bounds.
    pub fn page(self) -> Result<Page, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::bad_request(
                "invalid_pagination",
                format!("limit must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let offset = self.offset.unwrap_or(0);
        if offset > MAX_OFFSET {
            return Err(ApiError::bad_request(
                "invalid_pagination",
                format!("offset must be at most {MAX_OFFSET}"),
            ));
        }
        Ok(Page { limit, offset })
    }
}

/// `?limit=&offset=&cursor=` of the time-ordered feeds (timeline, a user's posts).
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CursorQuery {
    /// Items per page, 1–100 (default 20).
    pub limit: Option<u32>,
    /// Items to skip, 0–10000 (default 0); ignored when `cursor` is given.
    pub offset: Option<u32>,
    /// `meta.next_cursor` of the previous page: the next page starts right after its last item,
    /// however many posts arrived meanwhile.
    pub cursor: Option<String>,
}

/// Longest cursor accepted (the cache service's are about 60 characters).
const MAX_CURSOR_CHARS: usize = 128;

impl CursorQuery {
    /// Applies defaults and bounds; an empty cursor is no cursor.
    pub fn page(self) -> Result<(Page, Option<String>), ApiError> {
        let page = PageQuery {
            limit: self.limit,
            offset: self.offset,
        }
        .page()?;
        let cursor = self.cursor.filter(|c| !c.is_empty());
        if let Some(cursor) = &cursor
            && (cursor.len() > MAX_CURSOR_CHARS || !cursor.chars().all(|c| c.is_ascii_graphic()))
        {
            return Err(ApiError::bad_request(
                "invalid_pagination",
                "cursor must be a next_cursor this API handed out",
            ));
        }
        Ok((page, cursor))
    }
}

/// `Idempotency-Key`: absent is fine, malformed is 400 `invalid_idempotency_key`.
impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.headers.get("idempotency-key") {
            None => Ok(IdempotencyKey::NONE),
            Some(value) => {
                let text = value
                    .to_str()
                    .map_err(|_| crate::events::InvalidIdempotencyKey)?;
                Ok(IdempotencyKey::parse(text)?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_default_and_bound() {
        let page = PageQuery {
            limit: None,
            offset: None,
        }
        .page()
        .expect("defaults");
        assert_eq!(
            page,
            Page {
                limit: 20,
                offset: 0
            }
        );
        assert!(
            PageQuery {
                limit: Some(0),
                offset: None
            }
            .page()
            .is_err()
        );
        assert!(
            PageQuery {
                limit: Some(101),
                offset: None
            }
            .page()
            .is_err()
        );
        assert!(
            PageQuery {
                limit: Some(100),
                offset: Some(10_000)
            }
            .page()
            .is_ok()
        );
        assert!(
            PageQuery {
                limit: None,
                offset: Some(10_001)
            }
            .page()
            .is_err()
        );
    }
}
