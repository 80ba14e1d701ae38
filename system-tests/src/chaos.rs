//! The fault-injection suite (`just chaos`): every component runs as its own process while the
//! load generator writes at a steady rate; NATS, Redis, the Gorse double and each service are
//! killed with SIGKILL and restarted, one at a time. Afterwards it checks that
//!
//! - every write that got a 2xx is in the stream exactly once,
//! - its feedback reached the Gorse double (the dead-letter list drained into it),
//! - every service recovered on its own (ready again without intervention),
//! - failures during the outages were 503 with `Retry-After` (or no answer while the edge
//!   itself was down), never 500,
//!
//! and prints a table per fault.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use prost::Message as _;
use serde::Deserialize;
use sidechain_api_client::AnswerClass;
use sidechain_test_support::lifecycle::http_get;
use sidechain_test_support::{Identity, NatsServer, RedisServer, ServiceBinary, free_port};

/// How hard and how long to shake.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// Directory holding the binaries (`sidechain-edge`, …, `sidechain-load`).
    pub bin_dir: PathBuf,
    /// Steady running before each fault.
    pub steady: Duration,
    /// How long each component stays dead.
    pub down: Duration,
    /// Writes per second offered by the load generator.
    pub rate: f64,
    /// Where the write log and the load report go.
    pub out: PathBuf,
}

/// The components killed in turn.
const FAULTS: [&str; 6] = ["nats", "redis", "gorse", "edge", "feedback", "cache"];

/// One fault's outcome.
#[derive(Debug, Clone, Default)]
pub struct FaultRow {
    /// Component killed.
    pub fault: String,
    /// Seconds from restart until every service was ready again.
    pub recovered_after: f64,
    /// Writes answered 2xx during the window.
    pub accepted: usize,
    /// 503s with `Retry-After`.
    pub unavailable_with_retry_after: usize,
    /// 503s without it (should be 0).
    pub unavailable_without_retry_after: usize,
    /// 500s (should be 0).
    pub server_errors: usize,
    /// Other statuses.
    pub other: usize,
    /// Requests that got no answer (the edge was down).
    pub no_answer: usize,
}

/// The whole run's outcome.
#[derive(Debug, Clone, Default)]
pub struct ChaosReport {
    /// Per fault, plus a `steady` row for writes outside any fault window.
    pub rows: Vec<FaultRow>,
    /// Accepted writes in all.
    pub accepted: usize,
    /// Accepted writes missing from the stream, or present more than once.
    pub lost_in_stream: Vec<String>,
    /// Accepted writes whose feedback is not in the Gorse double.
    pub lost_in_gorse: Vec<String>,
    /// Whether every service was ready at the end.
    pub all_ready: bool,
}

impl ChaosReport {
    /// Whether the run shows no loss and no 500.
    pub fn passed(&self) -> bool {
        self.lost_in_stream.is_empty()
            && self.lost_in_gorse.is_empty()
            && self.all_ready
            && self.accepted > 0
            && self
                .rows
                .iter()
                .all(|r| r.server_errors == 0 && r.unavailable_without_retry_after == 0)
    }

    /// The table.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| fault | recovered after (s) | 2xx | 503 + Retry-After | 503 without | 500 | other | no answer |\n|---|---|---|---|---|---|---|---|\n",
        );
        for row in &self.rows {
            out.push_str(&format!(
                "| {} | {:.1} | {} | {} | {} | {} | {} | {} |\n",
                row.fault,
                row.recovered_after,
                row.accepted,
                row.unavailable_with_retry_after,
                row.unavailable_without_retry_after,
                row.server_errors,
                row.other,
                row.no_answer
            ));
        }
        out.push_str(&format!(
            "\naccepted writes: {} · lost in the stream: {} · feedback missing in Gorse: {} · all services ready at the end: {}\n",
            self.accepted,
            self.lost_in_stream.len(),
            self.lost_in_gorse.len(),
            self.all_ready
        ));
        out
    }
}

#[derive(Debug, Deserialize)]
struct WriteRecord {
    op: String,
    status: Option<u16>,
    retry_after: bool,
    event_id: Option<String>,
    target_id: Option<String>,
    id: Option<String>,
    user_id: String,
    at: DateTime<Utc>,
}

struct Services {
    edge: ServiceBinary,
    feedback: ServiceBinary,
    cache: ServiceBinary,
    gorse: ServiceBinary,
    ports: [u16; 3],
}

impl Services {
    fn all_ready(&self) -> bool {
        self.ports
            .iter()
            // Fully ready: every dependency back ("degraded" also answers 200).
            .all(|port| {
                http_get(*port, "/health/ready").is_some_and(|(status, body)| {
                    status == 200 && body.contains("\"status\":\"ready\"")
                })
            })
    }

    fn wait_ready(&self, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if self.all_ready() {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

/// Runs the suite.
pub async fn run(config: &ChaosConfig) -> anyhow::Result<ChaosReport> {
    std::fs::create_dir_all(&config.out)?;
    let work = tempfile::tempdir()?;
    let mut nats = NatsServer::start();
    let mut redis = RedisServer::start_durable();
    let (api, gorse_port) = (free_port(), free_port());
    let ports = [free_port(), free_port(), free_port()];
    let bin = |name: &str| config.bin_dir.join(name);
    for name in [
        "sidechain-edge",
        "sidechain-feedback",
        "sidechain-cache",
        "sidechain-gorse-double",
        "sidechain-load",
    ] {
        if !bin(name).is_file() {
            bail!(
                "{} is missing; build with `cargo build --release --bins`",
                bin(name).display()
            );
        }
    }
    let journal = work.path().join("gorse.jsonl").display().to_string();
    let gorse = ServiceBinary::spawn_with_args(
        &bin("sidechain-gorse-double"),
        &["--port", &gorse_port.to_string(), "--journal", &journal],
        &[],
    );
    let common = |identity: Identity, metrics_port: u16| -> Vec<(&'static str, String)> {
        let mut env = nats.env(identity);
        env.extend([
            ("REDIS_URL", redis.url_for(identity)),
            ("GORSE_URL", format!("http://127.0.0.1:{gorse_port}")),
            ("METRICS_PORT", metrics_port.to_string()),
            ("BIND_ADDRESS", "127.0.0.1".to_owned()),
            ("LOG_LEVEL", "warn".to_owned()),
            (
                "JWT_SECRET",
                "chaos-suite-secret-chaos-suite-secret".to_owned(),
            ),
            ("PORT", api.to_string()),
            ("RATE_LIMIT_AUTH", "1000000/1m".to_owned()),
            ("RATE_LIMIT_DEFAULT", "10000000/1m".to_owned()),
            ("RATE_LIMIT_UPLOAD", "1000000/1m".to_owned()),
            ("GORSE_BATCH_TIMEOUT", "500ms".to_owned()),
            ("GORSE_RETRY_BASE_DELAY", "100ms".to_owned()),
            ("GORSE_REQUEST_TIMEOUT", "2s".to_owned()),
            ("GORSE_HEALTH_INTERVAL", "1s".to_owned()),
            ("GORSE_DLQ_FLUSH_INTERVAL", "5s".to_owned()),
            ("GORSE_BREAKER_COOLDOWN", "2s".to_owned()),
            ("FEEDBACK_ACK_WAIT", "5s".to_owned()),
            ("SHUTDOWN_TIMEOUT", "5s".to_owned()),
        ]);
        env
    };
    let mut services = Services {
        edge: ServiceBinary::spawn(&bin("sidechain-edge"), &common(Identity::Edge, ports[0])),
        feedback: ServiceBinary::spawn(
            &bin("sidechain-feedback"),
            &common(Identity::Feedback, ports[1]),
        ),
        cache: ServiceBinary::spawn(&bin("sidechain-cache"), &common(Identity::Cache, ports[2])),
        gorse,
        ports,
    };
    services
        .wait_ready(Duration::from_secs(60))
        .context("services never became ready")?;

    let writes = config.out.join("writes.jsonl");
    let _ = std::fs::remove_file(&writes);
    let total = (config.steady + config.down + Duration::from_secs(8)) * FAULTS.len() as u32
        + config.steady;
    let mut load = Command::new(bin("sidechain-load"))
        .args(["run", "--scenario", "write", "--quiet", "--warmup", "0s"])
        .args(["--base-url", &format!("http://127.0.0.1:{api}")])
        .args(["--rate", &config.rate.to_string(), "--concurrency", "32"])
        .args([
            "--users",
            "40",
            "--posts-per-user",
            "2",
            "--follows-per-user",
            "3",
        ])
        .args(["--duration", &format!("{}s", total.as_secs())])
        .args(["--timeout", "5s"])
        .arg("--record-writes")
        .arg(&writes)
        .arg("--out")
        .arg(config.out.join("load"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting sidechain-load")?;
    wait_for_file(&writes, Duration::from_secs(120)).context("the load generator never wrote")?;

    let mut windows: Vec<(String, DateTime<Utc>, DateTime<Utc>, f64)> = Vec::new();
    for fault in FAULTS {
        tokio::time::sleep(config.steady).await;
        let start = Utc::now();
        eprintln!("chaos: killing {fault}");
        match fault {
            "nats" => nats.kill(),
            "redis" => redis.kill(),
            "gorse" => services.gorse.kill(),
            "edge" => services.edge.kill(),
            "feedback" => services.feedback.kill(),
            _ => services.cache.kill(),
        }
        tokio::time::sleep(config.down).await;
        match fault {
            "nats" => nats.restart(),
            "redis" => redis.restart(),
            "gorse" => services.gorse.restart(),
            "edge" => services.edge.restart(),
            "feedback" => services.feedback.restart(),
            _ => services.cache.restart(),
        }
        let recovered = services
            .wait_ready(Duration::from_secs(60))
            .with_context(|| format!("the services did not recover after the {fault} fault"))?;
        let end = Utc::now() + chrono::Duration::seconds(2);
        eprintln!(
            "chaos: {fault} back; all services ready after {:.1}s",
            recovered.as_secs_f64()
        );
        windows.push((fault.to_owned(), start, end, recovered.as_secs_f64()));
    }
    let status = tokio::task::spawn_blocking(move || load.wait()).await??;
    if !status.success() {
        bail!("the load generator failed ({status})");
    }

    // Let the pipeline drain: consumers caught up, dead letters flushed.
    let drained = wait_drained(&nats, &redis.url(), Duration::from_secs(120)).await;
    let mut report = verify(&writes, &windows, &nats, gorse_port).await?;
    report.all_ready = services.all_ready() && drained;
    Ok(report)
}

fn wait_for_file(path: &Path, limit: Duration) -> Option<()> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            return Some(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

async fn wait_drained(nats: &NatsServer, redis_url: &str, limit: Duration) -> bool {
    let Ok(client) = async_nats::ConnectOptions::with_nkey(
        std::fs::read_to_string(nats.seed_file(Identity::Admin))
            .unwrap_or_default()
            .trim()
            .to_owned(),
    )
    .connect(nats.url())
    .await
    else {
        return false;
    };
    let js = async_nats::jetstream::new(client);
    let Ok(redis) = redis::Client::open(redis_url) else {
        return false;
    };
    let started = Instant::now();
    while started.elapsed() < limit {
        let backlog = match js
            .get_consumer_from_stream::<async_nats::jetstream::consumer::pull::Config, _, _>(
                "feedback", "EVENTS",
            )
            .await
        {
            Ok(mut consumer) => consumer
                .info()
                .await
                .map(|i| i.num_pending + i.num_ack_pending as u64)
                .unwrap_or(1),
            Err(_) => 1,
        };
        let dead_letters: u64 = match redis.get_multiplexed_async_connection().await {
            Ok(mut conn) => redis::cmd("LLEN")
                .arg("gorse_failed_feedback")
                .query_async(&mut conn)
                .await
                .unwrap_or(1),
            Err(_) => 1,
        };
        if backlog == 0 && dead_letters == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

/// How many times each event id (`Nats-Msg-Id`) and each comment id is in the stream.
async fn stream_ids(nats: &NatsServer) -> (HashMap<String, usize>, HashMap<String, usize>) {
    let (mut by_event, mut by_comment) = (HashMap::new(), HashMap::new());
    for (_, payload, id) in sidechain_test_support::stream_messages(nats).await {
        if let Some(id) = id {
            *by_event.entry(id).or_insert(0) += 1;
        }
        if let Ok(event) = sidechain_events::events::Event::decode(payload)
            && let Some(sidechain_events::events::event::Payload::Comment(comment)) = event.payload
        {
            *by_comment.entry(comment.comment_id).or_insert(0) += 1;
        }
    }
    (by_event, by_comment)
}

async fn gorse_feedback(port: u16) -> anyhow::Result<BTreeSet<(String, String, String)>> {
    let record: serde_json::Value =
        reqwest::get(format!("http://127.0.0.1:{port}/__double/record"))
            .await?
            .json()
            .await?;
    Ok(record["feedback"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| {
                    Some((
                        r["type"].as_str()?.to_owned(),
                        r["user"].as_str()?.to_owned(),
                        r["item"].as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default())
}

async fn verify(
    writes: &Path,
    windows: &[(String, DateTime<Utc>, DateTime<Utc>, f64)],
    nats: &NatsServer,
    gorse_port: u16,
) -> anyhow::Result<ChaosReport> {
    let text = std::fs::read_to_string(writes)?;
    let records: Vec<WriteRecord> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let (by_event, by_comment) = stream_ids(nats).await;
    let feedback = gorse_feedback(gorse_port).await?;

    let mut rows: BTreeMap<String, FaultRow> = BTreeMap::new();
    let mut report = ChaosReport::default();
    for record in &records {
        let window = windows
            .iter()
            .find(|(_, start, end, _)| record.at >= *start && record.at <= *end)
            .map_or("steady", |(fault, ..)| fault.as_str());
        let row = rows.entry(window.to_owned()).or_insert_with(|| FaultRow {
            fault: window.to_owned(),
            recovered_after: windows.iter().find(|w| w.0 == window).map_or(0.0, |w| w.3),
            ..FaultRow::default()
        });
        match AnswerClass::of_status(record.status, record.retry_after) {
            AnswerClass::Accepted => {
                row.accepted += 1;
                report.accepted += 1;
                check_accepted(record, &by_event, &by_comment, &feedback, &mut report);
            }
            AnswerClass::UnavailableWithRetryAfter => row.unavailable_with_retry_after += 1,
            AnswerClass::UnavailableWithoutRetryAfter => row.unavailable_without_retry_after += 1,
            AnswerClass::ServerError => row.server_errors += 1,
            AnswerClass::Other => row.other += 1,
            AnswerClass::NoAnswer => row.no_answer += 1,
        }
    }
    let order = |name: &str| {
        FAULTS
            .iter()
            .position(|f| *f == name)
            .unwrap_or(FAULTS.len())
    };
    let mut rows: Vec<FaultRow> = rows.into_values().collect();
    rows.sort_by_key(|r| order(&r.fault));
    report.rows = rows;
    Ok(report)
}

fn check_accepted(
    record: &WriteRecord,
    by_event: &HashMap<String, usize>,
    by_comment: &HashMap<String, usize>,
    feedback: &BTreeSet<(String, String, String)>,
    report: &mut ChaosReport,
) {
    let label = format!(
        "{} by {} on {:?}",
        record.op, record.user_id, record.target_id
    );
    let stored_once = match record.op.as_str() {
        "comment" => record.id.as_ref().and_then(|id| by_comment.get(id)) == Some(&1),
        _ => record.event_id.as_ref().and_then(|id| by_event.get(id)) == Some(&1),
    };
    if !stored_once {
        report.lost_in_stream.push(label.clone());
    }
    let target = record.target_id.clone().unwrap_or_default();
    let has = |kind: &str, item: &str| {
        feedback.contains(&(kind.to_owned(), record.user_id.clone(), item.to_owned()))
    };
    let delivered = match record.op.as_str() {
        "like" => has("like", &target),
        "play" => has("like", &target) || has("view", &target),
        "comment" => has("comment", &target),
        "follow" => has("follow", &format!("user:{target}")),
        _ => true,
    };
    if !delivered {
        report.lost_in_gorse.push(label);
    }
}
