//! Serving HTTP with connection hygiene, for every listener of a service (the edge's API and
//! each admin port). axum's `serve` has no knobs, so a client that opens connections and never
//! finishes a request could hold them, and the file descriptors behind them, forever.
//! [`serve`] bounds:
//!
//! - **how many connections are open**: in total and per client address, with a
//!   [`Semaphore`] and a per-address count; a connection over either cap is closed at accept
//!   and counted in `sidechain_http_connections_rejected_total{listener,reason}`;
//! - **how long a request's line and headers may take**: `header_read_timeout`, counted from
//!   the accept for the first request and from the first byte of each later one; a connection
//!   over it is closed (`sidechain_http_connections_timed_out_total{listener}`);
//! - **how long a keep-alive connection may sit idle**: `idle_timeout` with no request in flight.
//!
//! hyper's own `header_read_timeout` starts when the connection is ready for the next request,
//! so it measures idle time and header time together; it is set to `idle_timeout` here (that
//! is the idle close) and the header deadline proper is kept by a watchdog per connection that
//! sees the first byte of a request arrive (the `Watched` stream) and the request reach the
//! router (the service). Shutdown is axum's: stop accepting, let in-flight requests finish,
//! close idle connections ([`GracefulShutdown`]); the caller caps how long that may take.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// The two timeouts every listener applies (`HTTP_HEADER_READ_TIMEOUT`, `HTTP_IDLE_TIMEOUT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTimeouts {
    /// A request's line and headers must be complete this long after the connection opened
    /// (first request) or after the request's first byte (later ones).
    pub header_read: Duration,
    /// A keep-alive connection with no request for this long is closed.
    pub idle: Duration,
}

/// How many connections a listener keeps open, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Header and idle timeouts.
    pub timeouts: HttpTimeouts,
    /// Connections open at once; one more is closed at accept.
    pub max_connections: usize,
    /// Connections open at once from one client address; one more is closed at accept.
    pub max_connections_per_ip: usize,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabels {
    listener: &'static str,
    reason: &'static str,
}

/// Connection metrics of every listener of a service, labelled by listener (`api`, `admin`).
#[derive(Debug, Clone, Default)]
pub struct ConnectionMetrics {
    open: Family<ListenerLabels, Gauge>,
    rejected: Family<RejectLabels, Counter>,
    timed_out: Family<ListenerLabels, Counter>,
}

impl ConnectionMetrics {
    /// Registers the metrics in `registry` (once per service; listeners share them).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "http_connections_open",
            "HTTP connections open, by listener",
            metrics.open.clone(),
        );
        registry.register(
            "http_connections_rejected",
            "HTTP connections closed at accept because a cap was reached, by listener and reason \
             (max_connections, max_connections_per_ip)",
            metrics.rejected.clone(),
        );
        registry.register(
            "http_connections_timed_out",
            "HTTP connections closed because a request's headers did not arrive in time, by listener",
            metrics.timed_out.clone(),
        );
        metrics
    }

    /// The metrics of one listener.
    pub fn listener(&self, listener: &'static str) -> ListenerMetrics {
        // One statement each: `get_or_create` holds the family's lock until its guard drops.
        let open = self
            .open
            .get_or_create(&ListenerLabels { listener })
            .clone();
        let rejected = |reason| {
            self.rejected
                .get_or_create(&RejectLabels { listener, reason })
                .clone()
        };
        let rejected_total = rejected("max_connections");
        let rejected_per_ip = rejected("max_connections_per_ip");
        let timed_out = self
            .timed_out
            .get_or_create(&ListenerLabels { listener })
            .clone();
        ListenerMetrics {
            open,
            rejected_total,
            rejected_per_ip,
            timed_out,
        }
    }
}

/// The metrics [`serve`] updates for one listener.
#[derive(Debug, Clone)]
pub struct ListenerMetrics {
    open: Gauge,
    rejected_total: Counter,
    rejected_per_ip: Counter,
    timed_out: Counter,
}

/// Serves `router` on `listener` within `limits` until `shutdown` is cancelled, then stops
/// accepting and returns once every open connection has finished its requests and closed.
///
/// Handlers see the peer address as `ConnectInfo<SocketAddr>`, as with axum's
/// `into_make_service_with_connect_info::<SocketAddr>()`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    metrics: ListenerMetrics,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_ip = Arc::new(PerIp::new(limits.max_connections_per_ip));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.timeouts.idle);
    builder.http2().timer(TokioTimer::new());
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) if is_connection_error(&err) => continue,
                Err(err) => {
                    // Out of file descriptors, most likely: give connections time to close.
                    tracing::error!(error = %err, "accepting a connection failed; retrying in 1s");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        () = shutdown.cancelled() => break,
                    }
                }
            },
            () = shutdown.cancelled() => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics.rejected_total.inc();
            tracing::debug!(%remote, "connection refused: max connections reached");
            continue;
        };
        let Some(ip_slot) = per_ip.admit(remote.ip()) else {
            metrics.rejected_per_ip.inc();
            tracing::debug!(%remote, "connection refused: max connections per address reached");
            continue;
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "TCP_NODELAY not set");
        }
        let connection = Connection {
            stream,
            remote,
            router: router.clone(),
            builder: builder.clone(),
            header_read_timeout: limits.timeouts.header_read,
            metrics: metrics.clone(),
            slots: (slot, ip_slot),
        };
        // Spawns are bounded: each holds one of the `max_connections` permits.
        tokio::spawn(connection.run(graceful.watcher()));
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Errors of one connection that was being accepted, not of the listener (as in axum's serve).
fn is_connection_error(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// One accepted connection and what it holds until it closes.
struct Connection {
    stream: TcpStream,
    remote: SocketAddr,
    router: Router,
    builder: auto::Builder<TokioExecutor>,
    header_read_timeout: Duration,
    metrics: ListenerMetrics,
    slots: (OwnedSemaphorePermit, IpSlot),
}

impl Connection {
    async fn run(self, watcher: hyper_util::server::graceful::Watcher) {
        let Self {
            stream,
            remote,
            router,
            builder,
            header_read_timeout,
            metrics,
            slots,
        } = self;
        metrics.open.inc();
        let (phase, watchdog) = watch::channel(Phase {
            in_flight: 0,
            head_deadline: Some(Instant::now() + header_read_timeout),
            http2: false,
        });
        let phase = Arc::new(phase);
        let io = TokioIo::new(Watched {
            stream,
            phase: phase.clone(),
            header_read_timeout,
        });
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            let in_flight = InFlight::begin(phase.clone(), &request);
            let answer = router.clone().oneshot(request);
            async move {
                let answer = answer.await;
                drop(in_flight);
                answer
            }
        });
        let served = watcher.watch(builder.serve_connection(io, service));
        tokio::select! {
            served = served => if let Err(err) = served {
                tracing::debug!(%remote, error = %err, "connection ended with an error");
            },
            () = head_overdue(watchdog) => {
                metrics.timed_out.inc();
                tracing::debug!(%remote, "request headers not received in time; connection closed");
            }
        }
        metrics.open.dec();
        drop(slots);
    }
}

/// Where a connection stands, as far as the header deadline is concerned.
#[derive(Debug, Clone, Copy)]
struct Phase {
    /// Requests handed to the router and not yet answered.
    in_flight: usize,
    /// When the request being received must have its headers complete.
    head_deadline: Option<Instant>,
    /// HTTP/2 multiplexes requests and sends frames between them, so byte arrival says nothing
    /// about a request; its connections get the deadline for their first request only.
    http2: bool,
}

/// Marks one request in flight: no header deadline runs while a connection has one.
struct InFlight(Arc<watch::Sender<Phase>>);

impl InFlight {
    fn begin<B>(phase: Arc<watch::Sender<Phase>>, request: &hyper::Request<B>) -> Self {
        let http2 = request.version() == hyper::Version::HTTP_2;
        phase.send_modify(|phase| {
            phase.in_flight += 1;
            phase.head_deadline = None;
            phase.http2 |= http2;
        });
        Self(phase)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .send_modify(|phase| phase.in_flight = phase.in_flight.saturating_sub(1));
    }
}

/// Resolves when the connection's header deadline passes.
async fn head_overdue(mut phase: watch::Receiver<Phase>) {
    loop {
        let deadline = phase.borrow_and_update().head_deadline;
        let changed = match deadline {
            Some(deadline) => tokio::select! {
                () = tokio::time::sleep_until(deadline) => {
                    if phase.borrow().head_deadline == Some(deadline) {
                        return;
                    }
                    Ok(())
                }
                changed = phase.changed() => changed,
            },
            None => phase.changed().await,
        };
        if changed.is_err() {
            // The connection is gone; its own future ends the select.
            std::future::pending::<()>().await;
        }
    }
}

/// The TCP stream of a connection, noting when a request's first byte arrives.
struct Watched {
    stream: TcpStream,
    phase: Arc<watch::Sender<Phase>>,
    header_read_timeout: Duration,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let timeout = this.header_read_timeout;
            this.phase.send_if_modified(|phase| {
                let starts_a_request =
                    phase.in_flight == 0 && phase.head_deadline.is_none() && !phase.http2;
                if starts_a_request {
                    phase.head_deadline = Some(Instant::now() + timeout);
                }
                starts_a_request
            });
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Open connections per client address.
#[derive(Debug)]
struct PerIp {
    cap: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIp {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for one more connection from `ip`, unless it has `cap` open.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        // An IPv4 client of a dual-stack socket is one address, however it is spelled.
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            table: self.clone(),
            ip,
        })
    }
}

/// One connection's place in its address's count, given back on drop.
#[derive(Debug)]
struct IpSlot {
    table: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self
            .table
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_cap_and_its_slots_back() {
        let table = Arc::new(PerIp::new(2));
        let ip: IpAddr = "10.0.0.1".parse().expect("ip");
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        let first = table.admit(ip).expect("first");
        let _second = table.admit(mapped).expect("second");
        assert!(table.admit(ip).is_none(), "third over the cap");
        assert!(table.admit("10.0.0.2".parse().expect("ip")).is_some());
        drop(first);
        assert!(
            table.admit(ip).is_some(),
            "a closed connection frees its slot"
        );
    }
}
