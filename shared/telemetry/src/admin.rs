//! The admin server on each service's metrics port: `/metrics`, `/health/live`, `/health/ready`.
//!
//! Liveness says the process is up. Readiness runs the service's checks (NATS connected, Redis
//! answering, …) concurrently with a short timeout, and turns 503 as soon as shutdown begins so
//! load balancers stop sending work before the service drains.
//!
//! Readiness means "this instance can serve something useful", not "every dependency is up":
//! an instance is `not_ready` (503) until every check has passed once — so a rollout waits for
//! new pods that can reach NATS and Redis — and from then on a failing dependency makes it
//! `degraded` (200, the failing checks named in the body) rather than unready. A Redis failover
//! or a NATS restart affects every instance at once; turning them all unready would take the
//! whole edge out of its Service (connection errors instead of its 503 + `Retry-After` answers
//! and its fallbacks). Dependency health is for metrics and alerts (docs/operations.md,
//! "Readiness").

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::BoxFuture;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::metrics;

/// How long one readiness check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

type CheckFn = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The checks that decide whether the service should receive work.
#[derive(Clone)]
pub struct Readiness {
    checks: Arc<Vec<(&'static str, CheckFn)>>,
    shutdown: CancellationToken,
    /// Set the first time every check passed.
    started: Arc<AtomicBool>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field(
                "checks",
                &self.checks.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Outcome of the readiness checks, as served on `/health/ready`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReadinessReport {
    /// `ready`, `degraded` (ready, with failing checks), `not_ready` or `draining`.
    pub status: &'static str,
    /// Each check: `up`, or `down: <why>`.
    pub checks: BTreeMap<&'static str, String>,
}

impl ReadinessReport {
    /// Whether the service should receive work.
    pub fn is_ready(&self) -> bool {
        matches!(self.status, "ready" | "degraded")
    }
}

impl Readiness {
    /// No checks yet; reports `draining` once `shutdown` is cancelled.
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            checks: Arc::new(Vec::new()),
            shutdown,
            started: Arc::default(),
        }
    }

    /// Adds a named check: `Ok(())` when the dependency is usable, else why not.
    pub fn with_check<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let check: CheckFn = Arc::new(move || Box::pin(check()));
        Arc::make_mut(&mut self.checks).push((name, check));
        self
    }

    /// Adds a check that passes while `flag` is set, the way a service reports a step of its
    /// own start-up (stream created, consumer running); `not_yet` says why it is not ready.
    pub fn with_flag(
        self,
        name: &'static str,
        flag: Arc<AtomicBool>,
        not_yet: &'static str,
    ) -> Self {
        self.with_check(name, move || {
            let ok = flag.load(Ordering::Relaxed);
            async move { if ok { Ok(()) } else { Err(not_yet.to_owned()) } }
        })
    }

    /// Runs every check concurrently.
    pub async fn report(&self) -> ReadinessReport {
        let results = futures::future::join_all(self.checks.iter().map(|(name, check)| {
            let check = check();
            async move {
                let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check).await {
                    Ok(Ok(())) => "up".to_owned(),
                    Ok(Err(why)) => format!("down: {why}"),
                    Err(_) => "down: timed out".to_owned(),
                };
                (*name, outcome)
            }
        }))
        .await;
        let checks: BTreeMap<_, _> = results.into_iter().collect();
        let status = if self.shutdown.is_cancelled() {
            "draining"
        } else if checks.values().all(|v| v == "up") {
            self.started.store(true, Ordering::Relaxed);
            "ready"
        } else if self.started.load(Ordering::Relaxed) {
            "degraded"
        } else {
            "not_ready"
        };
        ReadinessReport { status, checks }
    }
}

/// `/health/live` and `/health/ready`, for servers that mount health on their own port too.
pub fn health_routes(readiness: Readiness) -> Router {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(readiness)
}

/// The admin router: health routes plus `/metrics`.
pub fn router(registry: Arc<Registry>, readiness: Readiness) -> Router {
    let metrics_route = Router::new()
        .route("/metrics", get(metrics_handler))
        .with_state(registry);
    health_routes(readiness).merge(metrics_route)
}

/// `GET /health/live`: the process is up.
pub async fn live() -> Response {
    axum::Json(serde_json::json!({ "status": "live" })).into_response()
}

/// `GET /health/ready`: 200 when ready or degraded, 503 before the first success and while
/// draining; the body lists the checks.
pub async fn ready(State(readiness): State<Readiness>) -> Response {
    let report = readiness.report().await;
    let status = if report.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report)).into_response()
}

async fn metrics_handler(State(registry): State<Arc<Registry>>, headers: HeaderMap) -> Response {
    let wants_openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    let (body, content_type) = if wants_openmetrics {
        (
            metrics::encode_openmetrics(&registry),
            metrics::OPENMETRICS_CONTENT_TYPE,
        )
    } else {
        (
            metrics::encode_prometheus_text(&registry),
            metrics::PROMETHEUS_TEXT_CONTENT_TYPE,
        )
    };
    match body {
        Ok(body) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ready_when_every_check_passes() {
        let readiness = Readiness::new(CancellationToken::new())
            .with_check("nats", || async { Ok(()) })
            .with_check("redis", || async { Ok(()) });
        let report = readiness.report().await;
        assert!(report.is_ready());
        assert_eq!(report.checks["redis"], "up");
    }

    #[tokio::test]
    async fn a_failing_check_makes_it_not_ready_and_says_why() {
        let readiness = Readiness::new(CancellationToken::new())
            .with_check("nats", || async { Ok(()) })
            .with_check("redis", || async { Err("connection refused".to_owned()) });
        let report = readiness.report().await;
        assert_eq!(report.status, "not_ready");
        assert_eq!(report.checks["redis"], "down: connection refused");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_check_times_out() {
        let readiness = Readiness::new(CancellationToken::new())
            .with_check("slow", futures::future::pending::<Result<(), String>>);
        let report = readiness.report().await;
        assert_eq!(report.checks["slow"], "down: timed out");
    }

    #[tokio::test]
    async fn a_flag_check_follows_its_flag() {
        let flag = Arc::new(AtomicBool::new(false));
        let readiness =
            Readiness::new(CancellationToken::new()).with_flag("consumer", flag.clone(), "not yet");
        assert_eq!(readiness.report().await.checks["consumer"], "down: not yet");
        flag.store(true, Ordering::Relaxed);
        assert!(readiness.report().await.is_ready());
    }

    #[tokio::test]
    async fn after_its_first_success_a_failing_dependency_degrades_but_does_not_unready() {
        let redis_up = Arc::new(AtomicBool::new(false));
        let readiness = Readiness::new(CancellationToken::new()).with_flag(
            "redis",
            redis_up.clone(),
            "connection refused",
        );
        // Never ready yet: a new instance in a rollout waits for its dependencies.
        assert_eq!(readiness.report().await.status, "not_ready");
        redis_up.store(true, Ordering::Relaxed);
        assert_eq!(readiness.report().await.status, "ready");
        redis_up.store(false, Ordering::Relaxed);
        let report = readiness.report().await;
        assert_eq!(report.status, "degraded");
        assert!(report.is_ready());
        assert_eq!(report.checks["redis"], "down: connection refused");
        redis_up.store(true, Ordering::Relaxed);
        assert_eq!(readiness.report().await.status, "ready");
    }

    #[tokio::test]
    async fn shutdown_turns_readiness_to_draining() {
        let shutdown = CancellationToken::new();
        let readiness = Readiness::new(shutdown.clone()).with_check("nats", || async { Ok(()) });
        shutdown.cancel();
        assert_eq!(readiness.report().await.status, "draining");
    }
}
