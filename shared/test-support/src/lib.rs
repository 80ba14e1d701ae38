//! Test support for the Sidechain services.
//!
//! - [`NatsServer`] and [`RedisServer`] start real `nats-server -js` and `redis-server`
//!   processes on free ports with temporary data directories, and can be killed and restarted
//!   on the same port mid-test (fault tests). Every test starts its own servers, which isolates
//!   tests more strongly than per-test prefixes and lets them run in parallel.
//! - [`ServiceBinary`] runs a service's own binary as a child process (SIGTERM, stdout).
//! - [`GorseDouble`] is the **Gorse test double**: Gorse's REST endpoints with its status codes
//!   and bodies, recording what it received, able to fail, slow down, go away and come back.
//! - [`OtlpReceiver`] receives OTLP/gRPC spans in-process, so tests can follow a trace.
//! - The processes die with their handle (`Drop`).

mod binary;
mod gorse_double;
mod helpers;
pub mod lifecycle;
mod otlp;
mod process;
mod servers;
mod tls;

pub use binary::ServiceBinary;
pub use gorse_double::{GorseDouble, GorseRecord, ReceivedRequest};
pub use helpers::{Reply, eventually, metric, metric_sum, register, send, stream_messages};
pub use otlp::{OtlpReceiver, ReceivedSpan};
pub use process::free_port;
pub use servers::{NatsServer, RedisServer};
pub use sidechain_infra::identity::Identity;
pub use tls::TestCertificates;

/// Installs a log subscriber that writes through the test harness's capture (shown for failing
/// tests only). Safe to call from every test; only the first call installs it.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TEST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}
