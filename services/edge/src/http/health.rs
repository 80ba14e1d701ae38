//! Health routes on the API port: `/health` (the plugin's check), `/health/gorse`, plus the
//! admin server's `/health/live` and `/health/ready`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, TimeZone as _, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use sidechain_events::rpc::{GorseState, GorseStatus};

use crate::state::AppState;

/// Body of `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// Always `ok` when the process answers.
    pub status: &'static str,
    /// `sidechain-edge`.
    pub service: &'static str,
    /// Build version.
    pub version: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, body = HealthResponse)))]
pub async fn health() -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok",
        service: crate::SERVICE,
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// Body of `GET /health/gorse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct GorseHealthResponse {
    /// `healthy`, `unhealthy`, `unauthorized` (Gorse is ready but refuses `GORSE_API_KEY`), or
    /// `unknown` (the feedback service has not reported yet).
    pub status: &'static str,
    /// When the feedback service last checked.
    pub checked_at: Option<DateTime<Utc>>,
    /// When the status last changed.
    pub changed_at: Option<DateTime<Utc>>,
}

/// The `status` word for a reported Gorse status (`state` is absent from older reporters).
fn status_label(status: &GorseStatus) -> &'static str {
    match status.state() {
        GorseState::Unauthorized => "unauthorized",
        _ if status.healthy => "healthy",
        _ => "unhealthy",
    }
}

/// Gorse's health as last reported by the feedback service. Informational: the edge never
/// calls Gorse, so do not use this as the edge's own probe.
#[utoipa::path(get, path = "/health/gorse", tag = "health",
    responses((status = 200, description = "Gorse healthy", body = GorseHealthResponse),
        (status = 503, description = "Gorse unhealthy, refusing the API key, or not reported yet", body = GorseHealthResponse)))]
pub async fn gorse(State(state): State<Arc<AppState>>) -> (StatusCode, Json<GorseHealthResponse>) {
    let at = |ms: i64| Utc.timestamp_millis_opt(ms).single();
    match state.gorse.latest() {
        Some(status) => (
            if status.healthy {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            },
            Json(GorseHealthResponse {
                status: status_label(&status),
                checked_at: at(status.checked_at_ms),
                changed_at: at(status.changed_at_ms),
            }),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(GorseHealthResponse {
                status: "unknown",
                checked_at: None,
                changed_at: None,
            }),
        ),
    }
}

/// Body of the health probes (`/health/live`, `/health/ready`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProbeResponse {
    /// `live`; or `ready`, `not_ready`, `draining`.
    pub status: String,
    /// Readiness only: each check (`nats`, `redis`, `events_stream`) as `up` or `down: <why>`.
    pub checks: Option<std::collections::BTreeMap<String, String>>,
}

/// Liveness: the process answers (also on the metrics port).
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, body = ProbeResponse)))]
pub async fn live() -> Response {
    sidechain_telemetry::admin::live().await
}

/// Readiness: NATS, Redis and the event stream are usable (also on the metrics port). 503 while
/// a dependency is down or the edge is shutting down.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, body = ProbeResponse), (status = 503, body = ProbeResponse)))]
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    sidechain_telemetry::admin::ready(State(state.readiness.clone())).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_api_key_reads_unauthorized_and_older_reports_still_read() {
        let status = |healthy, state: GorseState| GorseStatus {
            healthy,
            state: state.into(),
            ..Default::default()
        };
        assert_eq!(status_label(&status(true, GorseState::Healthy)), "healthy");
        assert_eq!(
            status_label(&status(false, GorseState::Unhealthy)),
            "unhealthy"
        );
        assert_eq!(
            status_label(&status(false, GorseState::Unauthorized)),
            "unauthorized"
        );
        assert_eq!(
            status_label(&status(true, GorseState::Unspecified)),
            "healthy"
        );
        assert_eq!(
            status_label(&status(false, GorseState::Unspecified)),
            "unhealthy"
        );
    }
}
