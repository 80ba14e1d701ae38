//! The life of a service process, checked the same way for every service: it starts, becomes
//! ready, serves valid metrics, logs JSON lines, follows NATS and Redis going away and coming
//! back without a restart, rotates its log file by size, and exits 0 on SIGTERM.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::{Identity, NatsServer, RedisServer, ServiceBinary, free_port};

/// A minimal HTTP/1.1 GET (no client library needed): status code and body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

fn wait_for_status(port: u16, path: &str, want: u16, what: &str, service: &ServiceBinary) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if http_get(port, path).is_some_and(|(status, _)| status == want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {path} never answered {want}; output:\n{}",
            service.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `/health/ready` reports `want` (`ready`: 200, every check up; `degraded`: 200
/// with `check` down).
fn wait_for_readiness(port: u16, want: &str, check: &str, what: &str, service: &ServiceBinary) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    loop {
        if let Some((status, body)) = http_get(port, "/health/ready") {
            let report: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let check_up = report["checks"][check] == "up";
            let matches =
                status == 200 && report["status"] == want && check_up == (want == "ready");
            if matches {
                return;
            }
            last = Some((status, body));
        }
        assert!(
            Instant::now() < deadline,
            "{what}: /health/ready never reported {want}; last {last:?}; output:\n{}",
            service.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the whole scenario against `binary` connecting as `identity`, with `extra_env` added to
/// the usual settings.
pub fn run(binary: &Path, identity: Identity, extra_env: &[(&str, String)]) {
    let mut nats = NatsServer::start();
    let mut redis = RedisServer::start();
    let logs = tempfile::tempdir().expect("log dir");
    let log_file = logs.path().join("service.log");
    let metrics_port = free_port();
    let mut env = nats.env(identity);
    env.extend([
        ("REDIS_URL", redis.url_for(identity)),
        ("METRICS_PORT", metrics_port.to_string()),
        ("BIND_ADDRESS", "127.0.0.1".to_owned()),
        ("LOG_LEVEL", "debug".to_owned()),
        ("LOG_FILE", log_file.display().to_string()),
        ("LOG_FILE_MAX_BYTES", "300".to_owned()),
        ("LOG_FILE_MAX_FILES", "3".to_owned()),
        ("SHUTDOWN_TIMEOUT", "10s".to_owned()),
    ]);
    env.extend(extra_env.iter().cloned());
    let mut service = ServiceBinary::spawn(binary, &env);

    wait_for_status(metrics_port, "/health/live", 200, "liveness", &service);
    wait_for_status(metrics_port, "/health/ready", 200, "start-up", &service);

    let (status, metrics) = http_get(metrics_port, "/metrics").expect("metrics answer");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("sidechain_process_resident_memory_bytes"),
        "{metrics}"
    );
    for line in metrics
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        assert!(
            line.starts_with("sidechain_"),
            "unprefixed metric line: {line}"
        );
    }

    // A dependency going away degrades the instance but keeps it in service (200 with the
    // failing check named); it is fully ready again once the dependency is back.
    redis.kill();
    wait_for_readiness(metrics_port, "degraded", "redis", "Redis stopped", &service);
    redis.restart();
    wait_for_readiness(metrics_port, "ready", "redis", "Redis back", &service);

    nats.kill();
    wait_for_readiness(metrics_port, "degraded", "nats", "NATS stopped", &service);
    nats.restart();
    wait_for_readiness(metrics_port, "ready", "nats", "NATS back", &service);

    service.terminate();
    let status = service
        .wait_exit(Duration::from_secs(15))
        .unwrap_or_else(|| {
            panic!(
                "no exit within the drain cap; output:\n{}",
                service.output()
            )
        });
    assert!(
        status.success(),
        "exit status {status}; output:\n{}",
        service.output()
    );

    let output = service.output();
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 3, "too little logged:\n{output}");
    for line in &lines {
        let record: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        for field in ["level", "time", "msg", "name"] {
            assert!(
                record.get(field).is_some(),
                "log line lacks {field}: {line}"
            );
        }
    }
    assert!(output.contains("\"stopped cleanly\""), "{output}");

    let rotated = std::fs::read_dir(logs.path())
        .expect("log dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("service.log."))
        .count();
    assert!(rotated >= 1, "the log file never rotated");
    assert!(
        rotated <= 3,
        "more rotated files than LOG_FILE_MAX_FILES: {rotated}"
    );
}
