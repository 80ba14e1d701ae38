//! What a call came to: a [`Reply`] with any status, a [`Failure`] when no status came back,
//! and the [`ApiError`] of a typed call that wanted a 2xx.

use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::de::DeserializeOwned;

use crate::model::ErrorBody;

/// An answer with a status (any status, not only 2xx) and its whole body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers (`X-Request-ID`, `Retry-After`, `RateLimit-*`, …).
    pub headers: HeaderMap,
    /// The whole body, read to the end.
    pub body: Bytes,
}

impl Reply {
    /// The body decoded as `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The body as a JSON value; `Null` when the body is empty.
    pub fn json_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        if self.body.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        self.json()
    }

    /// The error body of a 4xx/5xx, when it has the API's error shape.
    pub fn error_body(&self) -> Option<ErrorBody> {
        self.json().ok()
    }

    /// Whether a `Retry-After` header was sent at all.
    pub fn has_retry_after(&self) -> bool {
        self.headers.contains_key(RETRY_AFTER)
    }

    /// `Retry-After` in whole seconds, when sent and numeric.
    pub fn retry_after(&self) -> Option<Duration> {
        self.headers
            .get(RETRY_AFTER)?
            .to_str()
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()
            .map(Duration::from_secs)
    }

    /// The body as text for messages, cut to 300 characters.
    pub fn body_excerpt(&self) -> String {
        String::from_utf8_lossy(&self.body)
            .chars()
            .take(300)
            .collect()
    }
}

/// Why no status came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The connection could not be made (refused, unreachable, DNS).
    Connect,
    /// The client-side timeout expired.
    Timeout,
    /// The connection broke mid-request or the body could not be read.
    Transport,
}

impl FailureKind {
    /// The label used in error counts: `connect`, `timeout` or `transport`.
    pub fn label(self) -> &'static str {
        match self {
            FailureKind::Connect => "connect",
            FailureKind::Timeout => "timeout",
            FailureKind::Transport => "transport",
        }
    }
}

/// A request that got no status.
#[derive(Debug, thiserror::Error)]
#[error("{}: {error}", kind.label())]
pub struct Failure {
    /// Which kind of failure.
    pub kind: FailureKind,
    /// The cause.
    #[source]
    pub error: reqwest::Error,
}

impl From<reqwest::Error> for Failure {
    fn from(error: reqwest::Error) -> Self {
        let kind = if error.is_timeout() {
            FailureKind::Timeout
        } else if error.is_connect() {
            FailureKind::Connect
        } else {
            FailureKind::Transport
        };
        Self { kind, error }
    }
}

/// What one call came to, whatever the status.
pub type Outcome = Result<Reply, Failure>;

/// The label an outcome is counted under when it is not a success: the status code (`"503"`)
/// or the failure kind (`"timeout"`). `None` for a 2xx.
pub fn error_label(outcome: &Outcome) -> Option<String> {
    match outcome {
        Ok(reply) if reply.status.is_success() => None,
        Ok(reply) => Some(reply.status.as_u16().to_string()),
        Err(failure) => Some(failure.kind.label().to_owned()),
    }
}

/// What an answer means for a client that must not lose writes (the chaos suite's rows): the
/// API promises a 2xx only once a write is stored, and 503 with `Retry-After` while a
/// dependency is down; a 500 or a 503 without `Retry-After` breaks that promise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerClass {
    /// A 2xx: stored.
    Accepted,
    /// A 503 with `Retry-After`: refused, try again later.
    UnavailableWithRetryAfter,
    /// A 503 without `Retry-After`.
    UnavailableWithoutRetryAfter,
    /// A 500.
    ServerError,
    /// Any other status.
    Other,
    /// No status came back.
    NoAnswer,
}

impl AnswerClass {
    /// The class of a status (`None`: no answer) and whether `Retry-After` came with it, as a
    /// write log records them.
    pub fn of_status(status: Option<u16>, has_retry_after: bool) -> Self {
        match status {
            Some(status) if (200..300).contains(&status) => AnswerClass::Accepted,
            Some(503) if has_retry_after => AnswerClass::UnavailableWithRetryAfter,
            Some(503) => AnswerClass::UnavailableWithoutRetryAfter,
            Some(500) => AnswerClass::ServerError,
            Some(_) => AnswerClass::Other,
            None => AnswerClass::NoAnswer,
        }
    }

    /// The class of an outcome.
    pub fn of(outcome: &Outcome) -> Self {
        match outcome {
            Ok(reply) => Self::of_status(Some(reply.status.as_u16()), reply.has_retry_after()),
            Err(_) => AnswerClass::NoAnswer,
        }
    }
}

/// A typed call that did not come back with the 2xx it wanted, grouped by what the caller does.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No status came back.
    #[error(transparent)]
    Failed(#[from] Failure),
    /// A status other than 2xx; the reply holds the error body and headers.
    #[error("answered {}: {}", .0.status, .0.body_excerpt())]
    Status(Reply),
    /// A 2xx whose body is not the expected shape (a contract break).
    #[error("a {} body that does not decode: {source}", reply.status)]
    Decode {
        /// The reply.
        reply: Reply,
        /// Why it did not decode.
        #[source]
        source: serde_json::Error,
    },
}

impl ApiError {
    /// Whether trying again later may succeed: no answer, a 5xx, or a 429.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Failed(_) => true,
            ApiError::Status(reply) => {
                reply.status.is_server_error() || reply.status == StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Decode { .. } => false,
        }
    }

    /// The reply, when a status came back.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            ApiError::Failed(_) => None,
            ApiError::Status(reply) | ApiError::Decode { reply, .. } => Some(reply),
        }
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn reply(status: u16, retry_after: Option<&'static str>) -> Reply {
        let mut headers = HeaderMap::new();
        if let Some(value) = retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from_static(value));
        }
        Reply {
            status: StatusCode::from_u16(status).expect("valid status"),
            headers,
            body: Bytes::new(),
        }
    }

    #[test]
    fn successes_have_no_error_label() {
        assert_eq!(error_label(&Ok(reply(200, None))), None);
        assert_eq!(error_label(&Ok(reply(201, None))), None);
        assert_eq!(error_label(&Ok(reply(503, None))).as_deref(), Some("503"));
        assert_eq!(error_label(&Ok(reply(429, None))).as_deref(), Some("429"));
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_its_presence_counts_on_its_own() {
        assert_eq!(
            reply(503, Some(" 2 ")).retry_after(),
            Some(Duration::from_secs(2))
        );
        let dated = reply(503, Some("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(dated.retry_after(), None);
        assert!(dated.has_retry_after());
        assert!(!reply(503, None).has_retry_after());
    }

    #[test]
    fn a_503_keeps_its_promise_only_with_retry_after() {
        assert_eq!(
            AnswerClass::of(&Ok(reply(503, Some("1")))),
            AnswerClass::UnavailableWithRetryAfter
        );
        assert_eq!(
            AnswerClass::of(&Ok(reply(503, None))),
            AnswerClass::UnavailableWithoutRetryAfter
        );
        assert_eq!(
            AnswerClass::of(&Ok(reply(202, None))),
            AnswerClass::Accepted
        );
        assert_eq!(
            AnswerClass::of_status(Some(500), true),
            AnswerClass::ServerError
        );
        assert_eq!(AnswerClass::of_status(Some(409), false), AnswerClass::Other);
        assert_eq!(AnswerClass::of_status(None, false), AnswerClass::NoAnswer);
    }

    #[test]
    fn only_unanswered_5xx_and_429_are_worth_retrying() {
        assert!(ApiError::Status(reply(503, None)).is_retryable());
        assert!(ApiError::Status(reply(429, None)).is_retryable());
        assert!(!ApiError::Status(reply(409, None)).is_retryable());
    }

    #[test]
    fn an_empty_body_is_null() {
        assert_eq!(
            reply(200, None).json_value().expect("empty is fine"),
            serde_json::Value::Null
        );
    }
}
