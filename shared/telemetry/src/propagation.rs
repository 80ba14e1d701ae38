//! W3C trace context (`traceparent`, `tracestate`) carried through HTTP and NATS headers, and
//! the helpers that make a span the continuation of a remote one.
//!
//! A root span (an HTTP request, a consumed message) declares `trace_id = tracing::field::Empty`
//! and is handed to [`continue_trace`] before it is entered; the id then appears on every log
//! line inside it. For a NATS message, [`message_span!`](crate::message_span) builds that span
//! with the OpenTelemetry messaging fields in one place.

/// The span of one NATS message being received or processed, continuing the trace its headers
/// carry: `otel.name` is `"<operation> <subject>"`, with `otel.kind`, `messaging.system`,
/// `messaging.operation.type`, `messaging.destination.name` and `trace_id`, plus any extra
/// fields given after the message.
///
/// ```ignore
/// let span = sidechain_telemetry::message_span!(
///     "feedback receive", kind = "consumer", operation = "receive", message,
///     messaging.message.id = tracing::field::Empty,
/// );
/// ```
///
/// A macro because `tracing` needs the span name and field names at compile time.
#[macro_export]
macro_rules! message_span {
    ($name:literal, kind = $kind:literal, operation = $operation:literal, $message:expr $(, $($field:tt)*)?) => {{
        let message = &$message;
        let span = $crate::__tracing::info_span!(
            $name,
            otel.name = %format!("{} {}", $operation, message.subject),
            otel.kind = $kind,
            messaging.system = "nats",
            messaging.operation.type = $operation,
            messaging.destination.name = %message.subject,
            trace_id = $crate::__tracing::field::Empty,
            $($($field)*)?
        );
        $crate::propagation::continue_trace(
            &span,
            $crate::propagation::extract_nats(message.headers.as_ref()),
        );
        span
    }};
}

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Makes `span` a child of `parent` (a context extracted from headers; an empty context starts a
/// new trace) and records its trace id in the span's `trace_id` field. Call before entering it.
pub fn continue_trace(span: &tracing::Span, parent: opentelemetry::Context) {
    // Fails only when no OpenTelemetry layer is installed or the span is disabled: then there
    // is no trace to continue, and logs simply carry no trace id.
    let _ = span.set_parent(parent);
    if let Some(trace_id) = trace_id(span) {
        span.record("trace_id", tracing::field::display(trace_id));
    }
}

/// Renames a span that has already started (e.g. to `GET /api/v1/feed/timeline` once the
/// route is known); recording `otel.name` only works before the span starts.
pub fn rename(span: &tracing::Span, name: String) {
    span.context().span().update_name(name);
}

/// The trace id of a span, if tracing is installed.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// The remote parent described by HTTP request headers.
pub fn extract_http(headers: &http::HeaderMap) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&HttpHeaders(headers))
}

/// The remote parent described by the headers of a request from outside (a client), with the
/// sampling decision taken here: the trace id is kept, so the caller's trace continues, but
/// whether it is recorded is drawn at `ratio` (`OTEL_TRACES_SAMPLER_ARG`) whatever the
/// caller's `sampled` flag says. An outsider can then neither force every request to be traced
/// (a cost) nor hide one from tracing. The draw is random, not derived from the trace id,
/// which the caller chooses. Services behind follow this decision through the message headers.
pub fn extract_http_from_outside(headers: &http::HeaderMap, ratio: f64) -> opentelemetry::Context {
    use opentelemetry::trace::{SpanContext, TraceFlags};
    let context = extract_http(headers);
    let remote = context.span().span_context().clone();
    if !remote.is_valid() {
        return context;
    }
    let flags = if rand::random::<f64>() < ratio {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
        remote.trace_id(),
        remote.span_id(),
        flags,
        true,
        remote.trace_state().clone(),
    ))
}

/// Writes the current span's context into outgoing HTTP request headers.
pub fn inject_http(headers: &mut http::HeaderMap) {
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut HttpHeadersMut(headers));
}

/// The remote parent described by a NATS message's headers (empty context when absent).
pub fn extract_nats(headers: Option<&async_nats::HeaderMap>) -> opentelemetry::Context {
    match headers {
        Some(headers) => TraceContextPropagator::new().extract(&NatsHeaders(headers)),
        None => opentelemetry::Context::new(),
    }
}

/// Writes the current span's context into NATS message headers.
pub fn inject_nats(headers: &mut async_nats::HeaderMap) {
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut NatsHeadersMut(headers));
}

struct HttpHeaders<'a>(&'a http::HeaderMap);

impl Extractor for HttpHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HttpHeadersMut<'a>(&'a mut http::HeaderMap);

impl Injector for HttpHeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

struct NatsHeaders<'a>(&'a async_nats::HeaderMap);

impl Extractor for NatsHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(async_nats::HeaderValue::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_ref()).collect()
    }
}

struct NatsHeadersMut<'a>(&'a mut async_nats::HeaderMap);

impl Injector for NatsHeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outside_caller_keeps_its_trace_id_but_not_its_sampling_decision() {
        use opentelemetry::trace::TraceContextExt as _;
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
        );
        let never = extract_http_from_outside(&headers, 0.0);
        let span = never.span();
        let context = span.span_context();
        assert_eq!(
            context.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert!(
            !context.is_sampled(),
            "the caller asked, but the ratio is 0"
        );
        headers.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
            ),
        );
        assert!(
            extract_http_from_outside(&headers, 1.0)
                .span()
                .span_context()
                .is_sampled()
        );
        // No traceparent: nothing to continue.
        let empty = extract_http_from_outside(&http::HeaderMap::new(), 1.0);
        assert!(!empty.span().span_context().is_valid());
    }

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_traceparent_survives_a_trip_through_nats_headers() {
        let mut http_headers = http::HeaderMap::new();
        http_headers.insert("traceparent", TRACEPARENT.parse().expect("header"));
        let context = extract_http(&http_headers);

        let mut nats_headers = async_nats::HeaderMap::new();
        TraceContextPropagator::new()
            .inject_context(&context, &mut NatsHeadersMut(&mut nats_headers));
        assert_eq!(
            nats_headers.get("traceparent").map(|v| v.as_str()),
            Some(TRACEPARENT)
        );

        let back = extract_nats(Some(&nats_headers));
        assert_eq!(
            back.span().span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }

    #[test]
    fn missing_headers_give_an_empty_context() {
        assert!(!extract_nats(None).span().span_context().is_valid());
        assert!(
            !extract_http(&http::HeaderMap::new())
                .span()
                .span_context()
                .is_valid()
        );
    }
}
