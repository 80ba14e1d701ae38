//! Connection hygiene on the API listener: slow clients cannot hold connections (or the admin
//! port) hostage, one address cannot take every connection, idle keep-alives are closed.
//! Raw TCP on loopback, since HTTP clients do not misbehave on purpose.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::{Backends, Edge};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

fn api_addr(edge: &Edge) -> SocketAddr {
    edge.running
        .as_ref()
        .and_then(|running| running.api_addr)
        .expect("api addr")
}

/// Sends `GET path` on a keep-alive connection and reads the whole answer; its status.
async fn get(stream: &mut TcpStream, path: &str) -> u16 {
    let request = format!("GET {path} HTTP/1.1\r\nHost: edge\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let mut chunk = [0_u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("answered in time")
            .expect("read");
        assert!(n > 0, "connection closed before the answer was complete");
        answer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&answer);
        let Some(end) = text.find("\r\n\r\n") else {
            continue;
        };
        let length: usize = text[..end]
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .expect("content-length");
        if answer.len() >= end + 4 + length {
            return text[9..12].parse().expect("status");
        }
    }
}

/// Waits up to `within` for the server to close `stream`; when it saw the close.
async fn closed_by_server(stream: &mut TcpStream, within: Duration) -> Option<Instant> {
    let mut chunk = [0_u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(Instant::now()),
            Ok(Ok(_)) => continue,
        }
    }
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

async fn wait_for_metric(edge: &Edge, series: &str, want: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value = metric(&edge.metrics().await, series);
        if let Some(value) = value.filter(|v| want(*v)) {
            return value;
        }
        assert!(Instant::now() < deadline, "{series} stayed at {value:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const LORIS_ADDRESSES: u8 = 8;
const LORIS_PER_ADDRESS: usize = 250;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_neither_starve_health_nor_keep_their_connections() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source().with("HTTP_HEADER_READ_TIMEOUT", "2s")).await;
    let api = api_addr(&edge);

    // 2,000 connections from 127.0.0.2–9 (250 each, under the default per-address cap of
    // 256), each with half a request line and then silence.
    let started = Instant::now();
    let mut loris = Vec::new();
    for host in 2..2 + LORIS_ADDRESSES {
        for _ in 0..LORIS_PER_ADDRESS {
            let socket = TcpSocket::new_v4().expect("socket");
            socket
                .bind(SocketAddr::from((Ipv4Addr::new(127, 0, 0, host), 0)))
                .expect("bind a loopback address");
            let mut stream = socket.connect(api).await.expect("connect");
            stream
                .write_all(b"GET /api/v1/feed/timel")
                .await
                .expect("write");
            loris.push(stream);
        }
    }
    let sent = Instant::now();
    let total = loris.len();
    wait_for_metric(
        &edge,
        "sidechain_http_connections_open{listener=\"api\"}",
        |open| open >= total as f64,
    )
    .await;
    let held = Instant::now();
    tracing::info!(total, opened_in = ?sent - started, held_after = ?held - started, "slow clients connected");

    // The admin port answers at once, on a fresh connection.
    let asked = Instant::now();
    let live = reqwest::Client::new()
        .get(format!("{}/health/live", edge.admin))
        .send()
        .await
        .expect("live answers");
    let took = asked.elapsed();
    tracing::info!(?took, "/health/live answered during the flood");
    assert_eq!(live.status(), reqwest::StatusCode::OK);
    assert!(
        took < Duration::from_millis(100),
        "/health/live took {took:?}"
    );

    // A well-behaved client of the API is still served.
    let user = edge.register("not_a_loris").await;
    assert!(!user.token.is_empty());

    // Each slow connection is closed by the server once its header deadline passes.
    let closes = futures::future::join_all(
        loris
            .iter_mut()
            .map(|stream| closed_by_server(stream, Duration::from_secs(15))),
    )
    .await;
    let closes: Vec<Instant> = closes
        .into_iter()
        .map(|closed| closed.expect("closed by the server"))
        .collect();
    let first = closes.iter().min().expect("some");
    let last = closes.iter().max().expect("some");
    tracing::info!(first = ?*first - started, last = ?*last - started, "slow clients closed");
    assert!(
        *first >= started + Duration::from_millis(1900),
        "closed before the header deadline: {:?}",
        *first - started
    );
    assert!(
        *last <= sent + Duration::from_secs(8),
        "closed late: {:?} after the last was sent",
        *last - sent
    );
    wait_for_metric(
        &edge,
        "sidechain_http_connections_timed_out_total{listener=\"api\"}",
        |n| n >= total as f64,
    )
    .await;
    edge.stop().await;
}

#[tokio::test]
async fn one_address_gets_its_cap_of_connections_and_no_more() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source().with("HTTP_MAX_CONNECTIONS_PER_IP", "5")).await;
    let api = api_addr(&edge);

    let mut five = Vec::new();
    for _ in 0..5 {
        let mut stream = TcpStream::connect(api).await.expect("connect");
        assert_eq!(get(&mut stream, "/health/live").await, 200);
        five.push(stream);
    }
    let mut sixth = TcpStream::connect(api).await.expect("the kernel accepts");
    let _ = sixth
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: edge\r\n\r\n")
        .await;
    assert!(
        closed_by_server(&mut sixth, Duration::from_secs(5))
            .await
            .is_some(),
        "the sixth connection was served"
    );
    for stream in &mut five {
        assert_eq!(
            get(stream, "/health/live").await,
            200,
            "the first five work"
        );
    }
    let rejected = metric(
        &edge.metrics().await,
        "sidechain_http_connections_rejected_total{listener=\"api\",reason=\"max_connections_per_ip\"}",
    );
    assert_eq!(rejected, Some(1.0));

    // Closing one gives its slot back.
    drop(five.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut stream = TcpStream::connect(api).await.expect("connect");
        let _ = stream
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: edge\r\n\r\n")
            .await;
        let mut first = [0_u8; 12];
        if stream.read_exact(&mut first).await.is_ok() {
            assert_eq!(&first[9..12], b"200");
            break;
        }
        assert!(Instant::now() < deadline, "the slot never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    edge.stop().await;
}

#[tokio::test]
async fn past_the_global_cap_connections_are_closed_at_accept() {
    let backends = Backends::start();
    let edge = Edge::start(
        backends
            .source()
            .with("HTTP_MAX_CONNECTIONS", "2")
            .with("HTTP_MAX_CONNECTIONS_PER_IP", "2"),
    )
    .await;
    let api = api_addr(&edge);
    let mut two = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(api).await.expect("connect");
        assert_eq!(get(&mut stream, "/health/live").await, 200);
        two.push(stream);
    }
    let mut third = TcpStream::connect(api).await.expect("the kernel accepts");
    let _ = third
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: edge\r\n\r\n")
        .await;
    assert!(
        closed_by_server(&mut third, Duration::from_secs(5))
            .await
            .is_some(),
        "the third connection was served"
    );
    // The admin port has its own budget.
    let live = edge
        .admin_http
        .get(format!("{}/health/live", edge.admin))
        .send()
        .await
        .expect("live answers");
    assert_eq!(live.status(), reqwest::StatusCode::OK);
    let metrics = edge.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "sidechain_http_connections_rejected_total{listener=\"api\",reason=\"max_connections\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "sidechain_http_connections_open{listener=\"api\"}"
        ),
        Some(2.0)
    );
    edge.stop().await;
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_after_the_idle_timeout() {
    let backends = Backends::start();
    let edge = Edge::start(
        backends
            .source()
            .with("HTTP_HEADER_READ_TIMEOUT", "500ms")
            .with("HTTP_IDLE_TIMEOUT", "2s"),
    )
    .await;
    let api = api_addr(&edge);

    let mut stream = TcpStream::connect(api).await.expect("connect");
    assert_eq!(get(&mut stream, "/health/live").await, 200);
    // Idle for longer than the header timeout but within the idle timeout: still open.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(get(&mut stream, "/health/live").await, 200);
    let answered = Instant::now();
    let closed = closed_by_server(&mut stream, Duration::from_secs(10))
        .await
        .expect("closed by the server");
    let idle = closed - answered;
    tracing::info!(?idle, "idle connection closed");
    assert!(
        idle >= Duration::from_millis(1900) && idle < Duration::from_secs(4),
        "closed after {idle:?} idle"
    );

    // A connection that never sends a request gets the header timeout, not the idle one.
    let mut silent = TcpStream::connect(api).await.expect("connect");
    let opened = Instant::now();
    let closed = closed_by_server(&mut silent, Duration::from_secs(10))
        .await
        .expect("closed by the server");
    assert!(
        closed - opened < Duration::from_millis(1500),
        "a silent connection lived {:?}",
        closed - opened
    );
    edge.stop().await;
}

#[tokio::test]
async fn shutdown_stops_accepting_and_lets_a_request_in_flight_finish() {
    let backends = Backends::start();
    let mut edge = Edge::start(backends.source()).await;
    let api = api_addr(&edge);

    // A sign-in whose body is still arriving: the handler is waiting for it.
    let body = br#"{"username":"nobody_here","password":"not the password"}"#;
    let mut stream = TcpStream::connect(api).await.expect("connect");
    let head = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(&body[..10]).await.expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;

    edge.shutdown.cancel();
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(api).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after shutdown");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    stream.write_all(&body[10..]).await.expect("write the rest");
    let mut answer = [0_u8; 12];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut answer))
        .await
        .expect("answered in time")
        .expect("the request in flight is answered");
    assert!(answer.starts_with(b"HTTP/1.1 "), "{answer:?}");
    let running = edge.running.take().expect("running");
    running.wait().await.expect("clean stop");
}
