//! The HTTP client.

use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use reqwest::{Method, StatusCode, Url};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next, RequestBuilder};
use reqwest_retry::{Jitter, RetryTransientMiddleware, policies::ExponentialBackoff};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument as _;

use crate::breaker::CircuitBreaker;
use crate::config::GorseConfig;
use crate::model::{Feedback, Item, RowAffected, User};

/// Longest `Retry-After` honoured before a retry (longer waits belong to the dead-letter list).
const RETRY_AFTER_CAP: Duration = Duration::from_secs(30);

/// A write without a body (deletes).
const NO_BODY: Option<&()> = None;

/// Whether a call goes through the circuit breaker: a policy chosen per call, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Breaker {
    /// Fails fast while the circuit is open, and its outcome opens or closes the circuit.
    Guarded,
    /// Always calls and leaves the breaker alone: the readiness probe, which is how recovery
    /// is noticed while the circuit is open.
    Bypass,
}

/// Why a call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GorseError {
    /// Gorse could not be reached, timed out, or answered 429/5xx after the retries. Try again
    /// later (dead-letter list, fallback).
    #[error("Gorse unavailable: {0}")]
    Unavailable(String),
    /// Gorse refused the request (a 4xx other than 401, 403, 408 and 429). Retrying will not
    /// help.
    #[error("Gorse rejected the request with {status}: {body}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// Gorse's (plain text) explanation, truncated.
        body: String,
    },
    /// Gorse refused our API key (401/403): a configuration error. The request is fine and will
    /// succeed once `GORSE_API_KEY` matches Gorse's, so it is retryable, never poison. Gorse's
    /// health endpoints skip the key (server/rest.go `AuthFilter`), so readiness stays green.
    #[error("Gorse refused the API key with {status}: {body}")]
    Unauthorized {
        /// HTTP status (401 or 403).
        status: u16,
        /// Gorse's (plain text) explanation, truncated.
        body: String,
    },
    /// The circuit breaker is open: Gorse failed repeatedly and is not being called for now.
    #[error("Gorse circuit open")]
    CircuitOpen,
}

impl GorseError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, GorseError::Rejected { .. })
    }

    fn outcome(&self) -> &'static str {
        match self {
            GorseError::Unavailable(_) => "unavailable",
            GorseError::Rejected { .. } => "rejected",
            GorseError::Unauthorized { .. } => "unauthorized",
            GorseError::CircuitOpen => "circuit_open",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    endpoint: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

/// The endpoint template of a request, carried to the middlewares (metric label).
#[derive(Debug, Clone, Copy)]
struct Endpoint(&'static str);

/// Client of one Gorse server.
#[derive(Debug, Clone)]
pub struct GorseClient {
    writer: ClientWithMiddleware,
    reader: ClientWithMiddleware,
    base: Url,
    api_key: Option<String>,
    read_timeout: Duration,
    breaker: CircuitBreaker,
    durations: Family<CallLabels, Histogram>,
}

impl GorseClient {
    /// A client for `config.gorse_url`; registers its metrics in `registry`.
    pub fn new(config: &GorseConfig, registry: &mut Registry) -> Result<Self, reqwest::Error> {
        let base = config.gorse_url.clone();
        let http = reqwest::Client::builder()
            .connect_timeout(config.gorse_connect_timeout)
            .timeout(config.gorse_request_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(16)
            .tcp_keepalive(Duration::from_secs(30))
            .build()?;

        let durations = Family::<CallLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(sidechain_telemetry::metrics::latency_buckets())
        });
        let retries = Family::<EndpointLabels, Counter>::default();
        let circuit = Gauge::default();
        registry.register_with_unit(
            "gorse_request_duration",
            "Time of Gorse calls including retries, by endpoint and outcome (ok|rejected|unauthorized|unavailable|circuit_open)",
            Unit::Seconds,
            durations.clone(),
        );
        registry.register(
            "gorse_retries",
            "Retries of Gorse calls after a transient failure, by endpoint",
            retries.clone(),
        );
        registry.register(
            "gorse_circuit_state",
            "Gorse circuit breaker: 0 closed, 1 half-open, 2 open",
            circuit.clone(),
        );

        let backoff = ExponentialBackoff::builder()
            .retry_bounds(
                config.gorse_retry_base_delay,
                config.gorse_retry_base_delay * 4,
            )
            .jitter(Jitter::Bounded)
            .base(2)
            // Attempts count the first one; the policy counts retries after it.
            .build_with_max_retries(config.gorse_retry_max_attempts.saturating_sub(1));
        let writer = ClientBuilder::new(http.clone())
            .with(RetryTransientMiddleware::new_with_policy(backoff))
            .with(HonourRetryAfter)
            .with(CountRetries { retries })
            .with(InjectTraceContext)
            .build();
        let reader = ClientBuilder::new(http).with(InjectTraceContext).build();
        Ok(Self {
            writer,
            reader,
            base,
            api_key: config.gorse_api_key.clone(),
            read_timeout: config.gorse_read_timeout,
            breaker: CircuitBreaker::new(
                config.gorse_breaker_failures,
                config.gorse_breaker_cooldown,
                circuit,
            ),
            durations,
        })
    }

    /// The circuit breaker (the health checker half-opens it when Gorse is ready).
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    fn request(
        &self,
        client: &ClientWithMiddleware,
        method: Method,
        url: Url,
        endpoint: &'static str,
    ) -> RequestBuilder {
        let mut request = client
            .request(method, url)
            .with_extension(Endpoint(endpoint));
        if let Some(key) = &self.api_key {
            request = request.header("X-API-Key", key);
        }
        request
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        endpoint: &'static str,
        request: RequestBuilder,
        breaker: Breaker,
    ) -> Result<T, GorseError> {
        let started = Instant::now();
        let result = if breaker == Breaker::Guarded && self.breaker.acquire().is_err() {
            Err(GorseError::CircuitOpen)
        } else {
            let span = tracing::info_span!(
                "gorse",
                otel.name = %format!("{method} {endpoint}"),
                otel.kind = "client",
                http.request.method = %method,
                url.template = endpoint,
                server.address = self.base.host_str().unwrap_or_default(),
                http.response.status_code = tracing::field::Empty,
            );
            let result = send(request).instrument(span).await;
            if breaker == Breaker::Guarded {
                self.breaker
                    .record(matches!(result, Ok(_) | Err(GorseError::Rejected { .. })));
            }
            result
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(err) => err.outcome(),
        };
        self.durations
            .get_or_create(&CallLabels { endpoint, outcome })
            .observe(started.elapsed().as_secs_f64());
        result
    }

    /// A write: `method` on the path `segments` (metric label `endpoint`) with an optional JSON
    /// body, retried on transient failures and guarded by the circuit breaker.
    async fn write<B: Serialize + ?Sized>(
        &self,
        method: Method,
        endpoint: &'static str,
        segments: &[&str],
        body: Option<&B>,
    ) -> Result<RowAffected, GorseError> {
        let mut request = self.request(&self.writer, method.clone(), self.url(segments), endpoint);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.call(method, endpoint, request, Breaker::Guarded).await
    }

    /// Upserts feedback with `PUT /api/feedback` (overwrites: safe to repeat).
    pub async fn put_feedback(&self, feedback: &[Feedback]) -> Result<RowAffected, GorseError> {
        self.write(
            Method::PUT,
            "/api/feedback",
            &["api", "feedback"],
            Some(feedback),
        )
        .await
    }

    /// Deletes one feedback row.
    pub async fn delete_feedback(
        &self,
        feedback_type: &str,
        user: &str,
        item: &str,
    ) -> Result<RowAffected, GorseError> {
        self.write(
            Method::DELETE,
            "/api/feedback/{type}/{user}/{item}",
            &["api", "feedback", feedback_type, user, item],
            NO_BODY,
        )
        .await
    }

    /// Inserts or updates items with `POST /api/items`.
    pub async fn insert_items(&self, items: &[Item]) -> Result<RowAffected, GorseError> {
        self.write(Method::POST, "/api/items", &["api", "items"], Some(items))
            .await
    }

    /// Deletes an item (and its feedback).
    pub async fn delete_item(&self, item: &str) -> Result<RowAffected, GorseError> {
        self.write(
            Method::DELETE,
            "/api/item/{id}",
            &["api", "item", item],
            NO_BODY,
        )
        .await
    }

    /// Whether Gorse has the item: `GET /api/item/{id}`, `false` on 404 (server/rest.go
    /// `getItem`: `PageNotFound` when the data store says `NotFound`). Retried and guarded like
    /// a write, since it decides what a batch sends.
    pub async fn item_exists(&self, item: &str) -> Result<bool, GorseError> {
        const ENDPOINT: &str = "/api/item/{id}";
        let request = self.request(
            &self.writer,
            Method::GET,
            self.url(&["api", "item", item]),
            ENDPOINT,
        );
        match self
            .call::<serde_json::Value>(Method::GET, ENDPOINT, request, Breaker::Guarded)
            .await
        {
            Ok(_) => Ok(true),
            Err(GorseError::Rejected { status: 404, .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Inserts or updates users with `POST /api/users`.
    pub async fn insert_users(&self, users: &[User]) -> Result<RowAffected, GorseError> {
        self.write(Method::POST, "/api/users", &["api", "users"], Some(users))
            .await
    }

    /// Up to `n` recommended item ids for `user`, skipping `offset`. One attempt with the short
    /// read timeout: callers answering a user fall back rather than wait.
    pub async fn recommend(
        &self,
        user: &str,
        n: usize,
        offset: usize,
    ) -> Result<Vec<String>, GorseError> {
        const ENDPOINT: &str = "/api/recommend/{user}";
        let mut url = self.url(&["api", "recommend", user]);
        url.query_pairs_mut()
            .append_pair("n", &n.to_string())
            .append_pair("offset", &offset.to_string());
        let request = self
            .request(&self.reader, Method::GET, url, ENDPOINT)
            .timeout(self.read_timeout);
        self.call(Method::GET, ENDPOINT, request, Breaker::Guarded)
            .await
    }

    /// `GET /api/health/ready`: `Ok` when Gorse is ready. Bypasses the breaker (it is how
    /// recovery is noticed).
    pub async fn ready(&self) -> Result<(), GorseError> {
        const ENDPOINT: &str = "/api/health/ready";
        let request = self
            .request(
                &self.reader,
                Method::GET,
                self.url(&["api", "health", "ready"]),
                ENDPOINT,
            )
            .timeout(self.read_timeout.max(Duration::from_secs(2)));
        self.call::<serde_json::Value>(Method::GET, ENDPOINT, request, Breaker::Bypass)
            .await
            .map(|_| ())
    }

    /// `GET /api/latest?n=1`: the cheapest authenticated read, so a wrong API key shows up as
    /// [`GorseError::Unauthorized`] (the readiness probe skips the key). Bypasses the breaker.
    pub async fn authorized(&self) -> Result<(), GorseError> {
        const ENDPOINT: &str = "/api/latest";
        let mut url = self.url(&["api", "latest"]);
        url.query_pairs_mut().append_pair("n", "1");
        let request = self
            .request(&self.reader, Method::GET, url, ENDPOINT)
            .timeout(self.read_timeout.max(Duration::from_secs(2)));
        self.call::<serde_json::Value>(Method::GET, ENDPOINT, request, Breaker::Bypass)
            .await
            .map(|_| ())
    }
}

async fn send<T: DeserializeOwned>(request: RequestBuilder) -> Result<T, GorseError> {
    let response = request
        .send()
        .await
        .map_err(|err| GorseError::Unavailable(err.to_string()))?;
    let status = response.status();
    tracing::Span::current().record("http.response.status_code", status.as_u16());
    if status.is_success() {
        return response
            .json::<T>()
            .await
            .map_err(|err| GorseError::Unavailable(format!("unreadable answer: {err}")));
    }
    let mut body = response.text().await.unwrap_or_default();
    body.truncate(200);
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        Err(GorseError::Unauthorized {
            status: status.as_u16(),
            body,
        })
    } else if status.is_client_error()
        && status != StatusCode::TOO_MANY_REQUESTS
        && status != StatusCode::REQUEST_TIMEOUT
    {
        Err(GorseError::Rejected {
            status: status.as_u16(),
            body,
        })
    } else {
        Err(GorseError::Unavailable(format!("HTTP {status}: {body}")))
    }
}

/// Puts the current trace context (`traceparent`) on every attempt.
struct InjectTraceContext;

#[async_trait::async_trait]
impl Middleware for InjectTraceContext {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        sidechain_telemetry::propagation::inject_http(request.headers_mut());
        next.run(request, extensions).await
    }
}

/// After a 429, waits at least as long as `Retry-After` (seconds, capped) before the retry
/// middleware adds its own backoff.
struct HonourRetryAfter;

#[async_trait::async_trait]
impl Middleware for HonourRetryAfter {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let response = next.run(request, extensions).await?;
        if response.status() == StatusCode::TOO_MANY_REQUESTS
            && let Some(seconds) = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        {
            tokio::time::sleep(Duration::from_secs(seconds).min(RETRY_AFTER_CAP)).await;
        }
        Ok(response)
    }
}

/// Counts retries: every attempt after the first of a request.
struct CountRetries {
    retries: Family<EndpointLabels, Counter>,
}

#[derive(Debug, Clone, Copy)]
struct Attempted;

#[async_trait::async_trait]
impl Middleware for CountRetries {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        // The retry middleware hands every attempt the same extensions.
        if extensions.insert(Attempted).is_some() {
            let endpoint = extensions.get::<Endpoint>().map_or("unknown", |e| e.0);
            self.retries
                .get_or_create(&EndpointLabels { endpoint })
                .inc();
        }
        next.run(request, extensions).await
    }
}
