//! The outermost layer of every request: request id, root span (continuing the caller's trace),
//! request timeout, access log and RED metrics.
//!
//! Request ids: a well-formed incoming `X-Request-ID` is kept, otherwise one is generated; it is
//! echoed in the response header, carried by every log line of the request (span field) and put
//! in error bodies (task-local, read by `ApiError`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use tracing::Instrument as _;

use super::error::ApiError;
use super::request_id::{REQUEST_ID_HEADER, valid_request_id, with_request_id};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

/// Exemplar of a latency observation: the trace it belongs to (OpenMetrics output only).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TraceExemplar {
    trace_id: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    method: &'static str,
    route: String,
    status: u16,
}

/// HTTP RED metrics.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    requests: Family<StatusLabels, Counter>,
    duration: Family<RouteLabels, HistogramWithExemplars<TraceExemplar>>,
    request_size: Family<RouteLabels, Histogram>,
    response_size: Family<RouteLabels, Histogram>,
    in_flight: Gauge,
}

impl HttpMetrics {
    /// Registers the metrics.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(|| {
                HistogramWithExemplars::new(sidechain_telemetry::metrics::latency_buckets())
            }),
            request_size: Family::new_with_constructor(|| {
                Histogram::new(sidechain_telemetry::metrics::size_buckets())
            }),
            response_size: Family::new_with_constructor(|| {
                Histogram::new(sidechain_telemetry::metrics::size_buckets())
            }),
            in_flight: Gauge::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            metrics.requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer HTTP requests, by method and route template",
            Unit::Seconds,
            metrics.duration.clone(),
        );
        registry.register_with_unit(
            "http_request_size",
            "Size of HTTP request bodies (Content-Length)",
            Unit::Bytes,
            metrics.request_size.clone(),
        );
        registry.register_with_unit(
            "http_response_size",
            "Size of HTTP response bodies",
            Unit::Bytes,
            metrics.response_size.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being handled now",
            metrics.in_flight.clone(),
        );
        metrics
    }
}

/// The upload route, whose time limit is `UPLOAD_TIMEOUT` rather than `REQUEST_TIMEOUT`.
const UPLOAD_PATH: &str = "/api/v1/audio/upload";

/// What the layer needs.
#[derive(Debug, Clone)]
pub struct Observe {
    /// Metrics to record into.
    pub metrics: HttpMetrics,
    /// Requests running longer get 503.
    pub timeout: Duration,
    /// The same for uploads, whose bodies take as long as the client's link needs; running
    /// longer gets 408.
    pub upload_timeout: Duration,
    /// Fraction of requests traced (`OTEL_TRACES_SAMPLER_ARG`), decided here whatever the
    /// caller's `traceparent` asks.
    pub trace_ratio: f64,
}

/// The layer itself (`axum::middleware::from_fn_with_state`).
pub async fn observe(
    State(observe): State<Arc<Observe>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = request
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(valid_request_id)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let method = method_label(request.method());
    let request_bytes = content_length(request.headers());
    let span = tracing::info_span!(
        "http.request",
        otel.name = %method,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %method,
        http.route = tracing::field::Empty,
        url.path = %request.uri().path(),
        http.response.status_code = tracing::field::Empty,
        request_id = %request_id,
        trace_id = tracing::field::Empty,
        user_id = tracing::field::Empty,
    );
    sidechain_telemetry::propagation::continue_trace(
        &span,
        sidechain_telemetry::propagation::extract_http_from_outside(
            request.headers(),
            observe.trace_ratio,
        ),
    );

    observe.metrics.in_flight.inc();
    let upload = request.uri().path() == UPLOAD_PATH;
    let limit = if upload {
        observe.upload_timeout
    } else {
        observe.timeout
    };
    let mut response = with_request_id(
        request_id.clone(),
        async move {
            match tokio::time::timeout(limit, next.run(request)).await {
                Ok(response) => response,
                Err(_) => {
                    tracing::warn!(timeout_ms = limit.as_millis() as u64, "request timed out");
                    if upload {
                        ApiError::RequestTimeout("the upload took longer than allowed".into())
                            .into_response()
                    } else {
                        ApiError::unavailable("request_timeout", "the request took too long; retry")
                            .into_response()
                    }
                }
            }
        }
        .instrument(span.clone()),
    )
    .await;
    observe.metrics.in_flight.dec();

    let elapsed = started.elapsed();
    let status = response.status();
    let route = response
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    span.record("http.route", route.as_str());
    sidechain_telemetry::propagation::rename(&span, format!("{method} {route}"));
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    let labels = RouteLabels {
        method,
        route: route.clone(),
    };
    observe
        .metrics
        .requests
        .get_or_create(&StatusLabels {
            method,
            route,
            status: status.as_u16(),
        })
        .inc();
    observe.metrics.duration.get_or_create(&labels).observe(
        elapsed.as_secs_f64(),
        sidechain_telemetry::propagation::trace_id(&span)
            .map(|trace_id| TraceExemplar { trace_id }),
        None,
    );
    if let Some(bytes) = request_bytes {
        observe
            .metrics
            .request_size
            .get_or_create(&labels)
            .observe(bytes);
    }
    let response_bytes = content_length(response.headers()).or_else(|| {
        http_body::Body::size_hint(response.body())
            .exact()
            .map(|n| n as f64)
    });
    if let Some(bytes) = response_bytes {
        observe
            .metrics
            .response_size
            .get_or_create(&labels)
            .observe(bytes);
    }
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request completed"
        );
    });

    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(REQUEST_ID_HEADER.clone(), value);
    }
    response
}

/// The method as a metric label and span name: the standard methods by name, anything else
/// `OTHER`, so a client inventing methods cannot create new series.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|known| *known == method)
        .map_or("OTHER", Method::as_str)
}

fn content_length(headers: &axum::http::HeaderMap) -> Option<f64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|n| n as f64)
}

/// Inner layer (`route_layer`): hands the matched route template to [`observe`], which runs
/// before routing and cannot see it otherwise.
pub async fn record_route(request: Request, next: Next) -> Response {
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(request).await;
    if let Some(matched) = matched {
        response.extensions_mut().insert(matched);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_methods_keep_their_name_and_others_are_other() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        for invented in ["BREW", "get", "PROPFIND", "X"] {
            let method = Method::from_bytes(invented.as_bytes()).expect("token");
            assert_eq!(method_label(&method), "OTHER", "{invented}");
        }
    }
}
