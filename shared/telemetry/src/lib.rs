//! Telemetry shared by every Sidechain service.
//!
//! - **Logs**: `tracing` events as Bunyan JSON lines on stdout and, when `LOG_FILE` is set, in a
//!   file rotated by size (100 MB, 5 files, 7 days by default). Every line of a request or of a
//!   processed message carries the `request_id`/`trace_id` fields of its root span.
//! - **Traces**: an OpenTelemetry tracer provider, always installed so trace ids exist and
//!   propagate; spans are exported over OTLP/gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//!   [`propagation`] carries W3C `traceparent` through HTTP and NATS headers.
//! - **Metrics**: a `prometheus-client` registry prefixed `sidechain_` ([`metrics`]), served by
//!   the [`admin`] server with `/metrics`, `/health/live` and `/health/ready`.
//!
//! [`build`] returns what it made; `main` installs the subscriber and calls
//! [`TelemetryGuard::shutdown`] on exit so buffered spans and log lines are flushed.

pub mod admin;
mod config;
mod logging;
pub mod metrics;
pub mod propagation;
mod setup;

pub use config::TelemetryConfig;
pub use setup::{TelemetryError, TelemetryGuard, build};
/// For [`message_span!`]: `tracing` as this crate sees it.
#[doc(hidden)]
pub use tracing as __tracing;
