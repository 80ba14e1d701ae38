//! The processes a bench run starts and owns: `nats-server` and `redis-server` (from
//! `sidechain-test-support`, on free ports), the Gorse test double, the three service release
//! binaries, and the floor programs. Every process dies with its handle (`Drop`), so an error,
//! a panic or Ctrl-C (which drops the run's future) leaves nothing behind.
//!
//! Services are configured as an operator would, through their environment; a [`Service`]
//! can be restarted on the same ports with different settings (`CACHE_PAGES=false`, ...).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_nats::jetstream;
use sidechain_events::subjects;
use sidechain_test_support::{NatsServer, RedisServer, ServiceBinary, free_port};

/// How long a service may take to report ready.
const READY_LIMIT: Duration = Duration::from_secs(60);

/// Quotas so generous that no measured request is ever limited: one request per microsecond,
/// the finest the edge accepts. The limiter still runs its full check on every request.
pub(crate) const HUGE_QUOTA: &str = "60000000/1m";

/// The programs a run needs, all from one build directory.
#[derive(Debug, Clone)]
pub(crate) struct Binaries {
    pub(crate) edge: PathBuf,
    pub(crate) feedback: PathBuf,
    pub(crate) cache: PathBuf,
    pub(crate) gorse_double: PathBuf,
    pub(crate) floor: PathBuf,
    pub(crate) load: PathBuf,
}

impl Binaries {
    /// Finds every program in `dir` (by default the directory of this executable).
    pub(crate) fn locate(dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let dir = match dir {
            Some(dir) => dir,
            None => std::env::current_exe()
                .context("locate this executable")?
                .parent()
                .context("executable without a directory")?
                .to_path_buf(),
        };
        let find = |name: &str| -> anyhow::Result<PathBuf> {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                bail!(
                    "{} is missing; build the release binaries first: cargo build --release --bins \
                     -p sidechain-edge -p sidechain-feedback -p sidechain-cache \
                     -p sidechain-test-support -p sidechain-load (or run `just bench`)",
                    path.display()
                )
            }
        };
        Ok(Self {
            edge: find("sidechain-edge")?,
            feedback: find("sidechain-feedback")?,
            cache: find("sidechain-cache")?,
            gorse_double: find("sidechain-gorse-double")?,
            floor: find("sidechain-floor")?,
            load: find("sidechain-load")?,
        })
    }
}

/// A helper program (the Gorse double, a floor program), run through test-support's
/// [`ServiceBinary`] like the services; killed on drop, its output then saved to `log`.
#[derive(Debug)]
pub(crate) struct Helper {
    name: String,
    process: ServiceBinary,
    log: PathBuf,
}

impl Helper {
    /// Starts `binary args…`.
    pub(crate) fn spawn(name: &str, binary: &Path, args: &[String], log: &Path) -> Self {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Self {
            name: name.to_owned(),
            process: ServiceBinary::spawn_with_args(binary, &args, &[]),
            log: log.to_path_buf(),
        }
    }

    /// Whether it has exited (and then the last lines of its output).
    pub(crate) fn exited(&mut self) -> Option<String> {
        exited(&self.name, &mut self.process)
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.process.kill();
        let _ = std::fs::write(&self.log, self.process.output());
    }
}

/// `Some(why)` when `process` has exited: its status and the last lines of its output.
fn exited(name: &str, process: &mut ServiceBinary) -> Option<String> {
    process.wait_exit(Duration::from_millis(1)).map(|status| {
        format!(
            "{name} exited with {status}:\n{}",
            tail(&process.output(), 20)
        )
    })
}

/// The last `lines` lines of `text`.
pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Polls `url` until it answers 200, failing early if `alive` reports the process gone.
pub(crate) async fn wait_ok(
    http: &reqwest::Client,
    url: &str,
    limit: Duration,
    mut alive: impl FnMut() -> Option<String>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let ok = http
            .get(url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return Ok(());
        }
        if let Some(gone) = alive() {
            bail!("{gone}");
        }
        if Instant::now() > deadline {
            bail!("{url} did not answer 200 within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Which service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Edge,
    Feedback,
    Cache,
}

impl Kind {
    /// Every service.
    pub(crate) const ALL: [Kind; 3] = [Kind::Edge, Kind::Feedback, Kind::Cache];

    /// Its name (`edge`, ...).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Edge => "edge",
            Kind::Feedback => "feedback",
            Kind::Cache => "cache",
        }
    }
}

/// One service binary, restartable on the same ports with other settings.
#[derive(Debug)]
pub(crate) struct Service {
    pub(crate) kind: Kind,
    binary: PathBuf,
    pub(crate) metrics_port: u16,
    env: Vec<(&'static str, String)>,
    process: Option<ServiceBinary>,
    logs: PathBuf,
    starts: u32,
}

impl Service {
    /// Starts it with its base settings plus `overrides`, and waits until it is ready.
    pub(crate) async fn start(
        &mut self,
        http: &reqwest::Client,
        overrides: &[(&'static str, &str)],
    ) -> anyhow::Result<()> {
        self.stop().await;
        let mut env = self.env.clone();
        env.retain(|(k, _)| !overrides.iter().any(|(o, _)| o == k));
        env.extend(overrides.iter().map(|(k, v)| (*k, (*v).to_owned())));
        self.process = Some(ServiceBinary::spawn(&self.binary, &env));
        self.starts += 1;
        let url = format!("http://127.0.0.1:{}/health/ready", self.metrics_port);
        let process = &mut self.process;
        let name = self.kind.name();
        wait_ok(http, &url, READY_LIMIT, || exited(name, process.as_mut()?))
            .await
            .with_context(|| format!("start the {name} service"))
    }

    /// SIGTERM, then SIGKILL if it has not drained in 20 s. Its output is kept in the logs.
    pub(crate) async fn stop(&mut self) {
        let Some(mut process) = self.process.take() else {
            return;
        };
        let log = self
            .logs
            .join(format!("{}-{}.log", self.kind.name(), self.starts));
        // Blocking waits of the test-support handle, off the async workers.
        tokio::task::block_in_place(|| {
            process.terminate();
            if process.wait_exit(Duration::from_secs(20)).is_none() {
                process.kill();
            }
        });
        let _ = std::fs::write(log, process.output());
    }

    /// Whether it was started more than once (a settings switch) during the run.
    pub(crate) fn restarted(&self) -> bool {
        self.starts > 1
    }

    /// Whether it is running.
    pub(crate) fn running(&self) -> bool {
        self.process.is_some()
    }
}

/// NATS, Redis, the Gorse double and the three services, on free ports.
#[derive(Debug)]
pub(crate) struct Stack {
    pub(crate) nats: NatsServer,
    pub(crate) redis: RedisServer,
    pub(crate) edge: Service,
    pub(crate) feedback: Service,
    pub(crate) cache: Service,
    /// The edge's API port.
    pub(crate) edge_port: u16,
    double: Option<Helper>,
    double_port: u16,
    /// The bench's own JetStream handle on this stack's NATS.
    pub(crate) js: jetstream::Context,
    http: reqwest::Client,
    bins: Binaries,
    logs: PathBuf,
}

impl Stack {
    /// Starts NATS, Redis and the Gorse double, configures the services and starts `start`
    /// of them (with their default settings).
    pub(crate) async fn start(
        bins: &Binaries,
        logs: &Path,
        http: &reqwest::Client,
        start: &[Kind],
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(logs).with_context(|| format!("create {}", logs.display()))?;
        let (nats, redis) =
            tokio::task::block_in_place(|| (NatsServer::start(), RedisServer::start()));
        let edge_port = free_port();
        let double_port = free_port();
        let secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let common = vec![
            ("NATS_URL", nats.url()),
            ("GORSE_URL", format!("http://127.0.0.1:{double_port}")),
            ("JWT_SECRET", secret),
            ("BIND_ADDRESS", "127.0.0.1".to_owned()),
            // Access logs at info cost throughput; warnings and errors are still kept.
            ("LOG_LEVEL", "warn".to_owned()),
            ("RATE_LIMIT_DEFAULT", HUGE_QUOTA.to_owned()),
            ("RATE_LIMIT_AUTH", HUGE_QUOTA.to_owned()),
            ("RATE_LIMIT_UPLOAD", HUGE_QUOTA.to_owned()),
            // Recovery after the Gorse outage phases only; no request path reads these.
            ("GORSE_HEALTH_INTERVAL", "2s".to_owned()),
            ("GORSE_BREAKER_COOLDOWN", "5s".to_owned()),
            ("SHUTDOWN_TIMEOUT", "10s".to_owned()),
        ];
        let service = |kind: Kind, binary: &Path, extra: Vec<(&'static str, String)>| {
            let metrics_port = free_port();
            let mut env = common.clone();
            let identity = match kind {
                Kind::Edge => sidechain_test_support::Identity::Edge,
                Kind::Feedback => sidechain_test_support::Identity::Feedback,
                Kind::Cache => sidechain_test_support::Identity::Cache,
            };
            env.push((
                "NATS_NKEY_FILE",
                nats.seed_file(identity).display().to_string(),
            ));
            env.push(("REDIS_URL", redis.url_for(identity)));
            env.push(("METRICS_PORT", metrics_port.to_string()));
            env.extend(extra);
            Service {
                kind,
                binary: binary.to_path_buf(),
                metrics_port,
                env,
                process: None,
                logs: logs.to_path_buf(),
                starts: 0,
            }
        };
        let client = nats.connect(sidechain_test_support::Identity::Admin).await;
        let mut stack = Self {
            edge: service(
                Kind::Edge,
                &bins.edge,
                vec![("PORT", edge_port.to_string())],
            ),
            feedback: service(Kind::Feedback, &bins.feedback, Vec::new()),
            cache: service(Kind::Cache, &bins.cache, Vec::new()),
            nats,
            redis,
            edge_port,
            double: None,
            double_port,
            js: jetstream::new(client),
            http: http.clone(),
            bins: bins.clone(),
            logs: logs.to_path_buf(),
        };
        stack.start_double().await?;
        for kind in start {
            stack.service(*kind).start(http, &[]).await?;
        }
        Ok(stack)
    }

    /// The service of `kind`.
    pub(crate) fn service(&mut self, kind: Kind) -> &mut Service {
        match kind {
            Kind::Edge => &mut self.edge,
            Kind::Feedback => &mut self.feedback,
            Kind::Cache => &mut self.cache,
        }
    }

    /// Every service, running or not.
    pub(crate) fn services(&self) -> [&Service; 3] {
        [&self.edge, &self.feedback, &self.cache]
    }

    /// `http://127.0.0.1:<edge port>`.
    pub(crate) fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.edge_port)
    }

    /// Starts the Gorse test double (again, after [`Self::kill_double`]) on its port.
    pub(crate) async fn start_double(&mut self) -> anyhow::Result<()> {
        self.kill_double();
        let mut child = Helper::spawn(
            "sidechain-gorse-double",
            &self.bins.gorse_double,
            &["--port".to_owned(), self.double_port.to_string()],
            &self.logs.join("gorse-double.log"),
        );
        let url = format!("http://127.0.0.1:{}/api/health/ready", self.double_port);
        wait_ok(&self.http, &url, Duration::from_secs(15), || child.exited()).await?;
        self.double = Some(child);
        Ok(())
    }

    /// Kills the Gorse double (connection refused from now on).
    pub(crate) fn kill_double(&mut self) {
        // Dropping the handle kills the process.
        self.double = None;
    }

    /// `POST /__double/control?<query>` (e.g. `latency_ms=10000`).
    pub(crate) async fn gorse_control(&self, query: &str) -> anyhow::Result<()> {
        self.http
            .post(format!(
                "http://127.0.0.1:{}/__double/control?{query}",
                self.double_port
            ))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .context("control the Gorse double")
            .map(drop)
    }

    /// `GET /__double/record`.
    pub(crate) async fn gorse_record(&self) -> anyhow::Result<serde_json::Value> {
        self.http
            .get(format!(
                "http://127.0.0.1:{}/__double/record",
                self.double_port
            ))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .context("read the Gorse double's record")?
            .json()
            .await
            .context("the Gorse double's record")
    }

    /// Last sequence of the `EVENTS` stream (0 when it does not exist yet).
    pub(crate) async fn last_sequence(&self) -> anyhow::Result<u64> {
        match self.js.get_stream(subjects::EVENTS_STREAM).await {
            Ok(mut stream) => Ok(stream
                .info()
                .await
                .context("stream info")?
                .state
                .last_sequence),
            Err(_) => Ok(0),
        }
    }

    /// Waits until the running consumers among `consumers` have nothing pending or
    /// unacknowledged, so the next measurement does not compete with the last one's backlog.
    /// Answers false if they are still busy after `limit`.
    pub(crate) async fn settle(&self, consumers: &[&str], limit: Duration) -> anyhow::Result<bool> {
        let deadline = Instant::now() + limit;
        let stream = self
            .js
            .get_stream(subjects::EVENTS_STREAM)
            .await
            .context("open the EVENTS stream")?;
        loop {
            let mut busy = false;
            for name in consumers {
                if let Ok(info) = stream.consumer_info(*name).await {
                    busy |= info.num_pending > 0 || info.num_ack_pending > 0;
                }
            }
            if !busy {
                return Ok(true);
            }
            if Instant::now() > deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops every service (SIGTERM, drained) and the double.
    pub(crate) async fn stop(&mut self) {
        for kind in Kind::ALL {
            self.service(kind).stop().await;
        }
        self.kill_double();
    }
}
