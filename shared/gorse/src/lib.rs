//! Client of the Gorse recommender (v0.5 REST API), shared by the feedback service (writes) and
//! the cache service (recommendations).
//!
//! - One pooled `reqwest` client (keep-alive, connect and request timeouts).
//! - Writes retry transient failures (connect errors, timeouts, 429, 5xx) with exponential
//!   backoff and jitter (`reqwest-retry`; by default `GORSE_RETRY_MAX_ATTEMPTS` = 4: the first
//!   attempt, then retries after about 1 s, 2 s, 4 s),
//!   waiting at least as long as a 429's `Retry-After`; other 4xx are never retried. A 401/403
//!   ([`GorseError::Unauthorized`]: `GORSE_API_KEY` does not match) is retryable later, not a
//!   verdict on the request; `GorseClient::authorized` probes for it, since Gorse's health
//!   routes skip the key.
//! - Reads used while answering a user (recommendations) are not retried: the caller has a
//!   fallback and must not wait.
//! - A [`CircuitBreaker`] stops calling after consecutive failures and fails fast until a
//!   half-open probe succeeds.
//! - Every call is a client span carrying `traceparent`, and is timed in
//!   `sidechain_gorse_request_duration_seconds{endpoint,outcome}`.
//!
//! Feedback is written with `PUT /api/feedback`, which overwrites: redelivering the same events
//! never double-counts (Gorse's `POST` adds values up).

mod breaker;
mod client;
mod config;
mod model;

pub use breaker::{BreakerState, CircuitBreaker};
pub use client::{GorseClient, GorseError};
pub use config::GorseConfig;
pub use model::{Feedback, Item, RowAffected, User, validate_labels};
