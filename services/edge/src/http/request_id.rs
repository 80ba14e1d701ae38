//! The request id of the request being handled, set by the `observe` layer for the whole of
//! the request's task and read wherever an answer or a log line needs it (error bodies).

use axum::http::{HeaderName, HeaderValue};

/// `X-Request-ID`.
pub static REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled, if called inside one.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Runs `work` with `id` as the current request id.
pub async fn with_request_id<F: Future>(id: String, work: F) -> F::Output {
    REQUEST_ID.scope(id, work).await
}

/// Keeps an incoming id only if it is short and made of safe characters, so ids can't be used
/// to inject text into logs or headers.
pub fn valid_request_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let ok = (1..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_incoming_ids_are_kept_and_others_replaced() {
        let keep = HeaderValue::from_static("req-123_abc.def:9");
        assert_eq!(
            valid_request_id(&keep).as_deref(),
            Some("req-123_abc.def:9")
        );
        for bad in ["", "has space", "quote\"d", &"x".repeat(129)] {
            let value = HeaderValue::from_str(bad).expect("header");
            assert_eq!(valid_request_id(&value), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn the_id_is_visible_inside_its_scope_only() {
        assert_eq!(current_request_id(), None);
        let inside = with_request_id("req-1".into(), async { current_request_id() }).await;
        assert_eq!(inside.as_deref(), Some("req-1"));
    }
}
