//! The floors, measured in the same run as the services: Redis `PING` and NATS request/reply
//! round trips (one client, sequential), and the `sidechain-floor` programs (bare HTTP, the
//! cached-feed read, the like write) under the same wrk load as the services.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::stack::{Binaries, Helper, wait_ok};

/// A sequential round-trip measurement.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct RoundTrip {
    /// How it was measured.
    pub(crate) method: String,
    pub(crate) count: u64,
    pub(crate) p50_us: f64,
    pub(crate) avg_us: f64,
    pub(crate) p99_us: f64,
}

/// Records sequential round trips of `once` into a histogram (µs).
async fn sequential<F, Fut>(count: u32, mut once: F) -> anyhow::Result<(f64, f64, f64)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).context("histogram")?;
    // A short warm-up: connections, allocations, CPU frequency.
    for _ in 0..(count / 10).max(100) {
        once().await?;
    }
    for _ in 0..count {
        let start = Instant::now();
        once().await?;
        let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        histogram.saturating_record(micros.max(1));
    }
    Ok((
        histogram.value_at_quantile(0.5) as f64,
        histogram.mean(),
        histogram.value_at_quantile(0.99) as f64,
    ))
}

/// Redis `PING` with `redis-benchmark -t ping -c 1` (the tool of DESIGN.md's floor), if
/// installed.
pub(crate) async fn redis_benchmark(
    (port, user, password): &(u16, &str, String),
    count: u32,
) -> anyhow::Result<Option<RoundTrip>> {
    let output = match tokio::process::Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["--user", user, "-a", password])
        .args(["-t", "ping", "-c", "1", "-n", &count.to_string(), "--csv"])
        .kill_on_drop(true)
        .output()
        .await
    {
        Ok(output) if output.status.success() => output,
        Ok(output) => bail!(
            "redis-benchmark failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(_) => return Ok(None),
    };
    let csv = String::from_utf8_lossy(&output.stdout);
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    let line = csv
        .lines()
        .find(|l| l.starts_with("\"PING_MBULK\""))
        .with_context(|| format!("no PING_MBULK line in redis-benchmark's output:\n{csv}"))?;
    let fields: Vec<f64> = line
        .split(',')
        .skip(1)
        .filter_map(|f| f.trim_matches('"').parse().ok())
        .collect();
    let [_, avg, _, p50, _, p99, ..] = fields[..] else {
        bail!("unexpected redis-benchmark line: {line}");
    };
    Ok(Some(RoundTrip {
        method: format!("redis-benchmark -t ping -c 1 -n {count} (PING_MBULK)"),
        count: u64::from(count),
        p50_us: p50 * 1000.0,
        avg_us: avg * 1000.0,
        p99_us: p99 * 1000.0,
    }))
}

/// Redis `PING` through redis-rs's connection manager, the client the services use.
pub(crate) async fn redis_client_ping(url: &str, count: u32) -> anyhow::Result<RoundTrip> {
    let conn = redis::Client::open(url)
        .context("redis URL")?
        .get_connection_manager()
        .await
        .context("connect to Redis")?;
    let (p50, avg, p99) = sequential(count, || {
        let mut conn = conn.clone();
        async move {
            let _: String = redis::cmd("PING")
                .query_async(&mut conn)
                .await
                .context("PING")?;
            Ok(())
        }
    })
    .await?;
    Ok(RoundTrip {
        method: format!("redis-rs ConnectionManager, {count} sequential PINGs"),
        count: u64::from(count),
        p50_us: p50,
        avg_us: avg,
        p99_us: p99,
    })
}

/// NATS request/reply: a responder on its own connection, requests one after another.
pub(crate) async fn nats_request_reply(
    nats: &sidechain_test_support::NatsServer,
    count: u32,
) -> anyhow::Result<RoundTrip> {
    let responder = nats.connect(sidechain_test_support::Identity::Admin).await;
    let mut requests = responder
        .subscribe("bench.floor.rr")
        .await
        .context("subscribe")?;
    responder.flush().await.context("flush")?;
    let answering = tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            if let Some(reply) = request.reply {
                let _ = responder.publish(reply, request.payload).await;
            }
        }
    });
    let client = nats.connect(sidechain_test_support::Identity::Admin).await;
    let payload = bytes::Bytes::from_static(b"{\"viewer\":\"bench\",\"limit\":20}");
    let measured = sequential(count, || {
        let (client, payload) = (client.clone(), payload.clone());
        async move {
            client
                .request("bench.floor.rr", payload)
                .await
                .context("request")?;
            Ok(())
        }
    })
    .await;
    answering.abort();
    let (p50, avg, p99) = measured?;
    Ok(RoundTrip {
        method: format!("async-nats request/reply, {count} sequential"),
        count: u64::from(count),
        p50_us: p50,
        avg_us: avg,
        p99_us: p99,
    })
}

/// Which floor program.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Program {
    Hello,
    Feed,
    Like,
}

/// A running `sidechain-floor`, stopped on drop.
#[derive(Debug)]
pub(crate) struct FloorProcess {
    _child: Helper,
    /// The URL wrk should load.
    pub(crate) url: String,
}

/// Starts `sidechain-floor <program>` on `port` and waits until it answers.
pub(crate) async fn start(
    bins: &Binaries,
    http: &reqwest::Client,
    program: Program,
    port: u16,
    nats: &sidechain_test_support::NatsServer,
    redis: &str,
    logs: &Path,
) -> anyhow::Result<FloorProcess> {
    // The floor programs connect as the admin: no allow-lists to check, as on a bare server.
    let nkey = [
        "--nkey-file".to_owned(),
        nats.seed_file(sidechain_test_support::Identity::Admin)
            .display()
            .to_string(),
    ];
    let nats = nats.url();
    let nats = nats.as_str();
    let port_arg = ["--port".to_owned(), port.to_string()];
    let (name, path, args): (&str, &str, Vec<String>) = match program {
        Program::Hello => ("hello", "/hello", vec![]),
        Program::Feed => (
            "feed",
            "/feed",
            vec![
                "--nats".to_owned(),
                nats.to_owned(),
                nkey[0].clone(),
                nkey[1].clone(),
                "--redis".to_owned(),
                redis.to_owned(),
            ],
        ),
        Program::Like => (
            "like",
            "/like",
            vec![
                "--nats".to_owned(),
                nats.to_owned(),
                nkey[0].clone(),
                nkey[1].clone(),
            ],
        ),
    };
    let mut full = vec![name.to_owned()];
    full.extend(port_arg);
    full.extend(args);
    let mut child = Helper::spawn(
        &format!("sidechain-floor {name}"),
        &bins.floor,
        &full,
        &logs.join(format!("floor-{name}.log")),
    );
    let url = format!("http://127.0.0.1:{port}{path}");
    match program {
        Program::Like => {
            // A POST must be answered 202 (the stream exists, acks come back).
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                let ok = http
                    .post(&url)
                    .body("{}")
                    .send()
                    .await
                    .is_ok_and(|r| r.status().as_u16() == 202);
                if ok {
                    break;
                }
                if let Some(gone) = child.exited() {
                    bail!("{gone}");
                }
                if Instant::now() > deadline {
                    bail!("the like floor never answered 202");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Program::Hello | Program::Feed => {
            wait_ok(http, &url, Duration::from_secs(15), || child.exited()).await?;
        }
    }
    Ok(FloorProcess { _child: child, url })
}
