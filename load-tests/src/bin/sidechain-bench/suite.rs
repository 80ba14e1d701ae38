//! The comparisons, in the order a run makes them. One stack (NATS, Redis, Gorse double,
//! edge, feedback, cache) serves the floors and every request-path comparison; settings are
//! switched by restarting a service with other environment variables and switched back
//! afterwards. The consumer benchmarks (feedback, replay) each get a fresh stack of their own,
//! so their backlog is exactly what they measure.
//!
//! Every wrk comparison is `-t2 -c<connections>` (100 by default, like DESIGN.md's floors), a
//! warm-up, then `repetitions` runs whose medians are reported. Writes (likes) leave work for
//! the consumers; before each like run the bench waits until the consumers have caught up, so
//! a run does not pay for the previous one's backlog (it still pays for its own, as in
//! production).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::ValueEnum;
use serde_json::Value;
use sidechain_events::subjects;
use sidechain_test_support::free_port;

use crate::api::{Account, Api};
use crate::backlog;
use crate::floors::{self, RoundTrip};
use crate::metrics::{self, Scrape};
use crate::report::{Report, Verdict};
use crate::stack::{Binaries, Kind, Stack};
use crate::wrk::{self, Series, Shape, Target, Wrk, ms, rate};

/// The longest the bench waits for the consumers to catch up before a run.
const SETTLE_LIMIT: Duration = Duration::from_secs(90);
/// Both consumers of the main stack.
const CONSUMERS: [&str; 2] = [subjects::CACHE_CONSUMER, subjects::FEEDBACK_CONSUMER];
/// Posters the viewer follows, and posts each shares: one full 20-post timeline page.
const POSTERS: u32 = 4;
const POSTS_EACH: u32 = 5;
const PAGE: u32 = 20;

/// Groups of measurements (`--only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Group {
    /// Redis and NATS round trips, and the hello, feed and like floor programs.
    Floors,
    /// The timeline with and without the page cache, and the invalidation delay.
    Feed,
    /// `/auth/me` with and without the session caches.
    Auth,
    /// Likes: against the floor, the limiter backends, Gorse healthy/stalled/down.
    Like,
    /// The mixed scenario, the cache hit ratio, 1,000 connections, RSS, the soak.
    Mixed,
    /// The feedback service draining a backlog into the Gorse double.
    Feedback,
    /// The cache service replaying the stream into an empty Redis.
    Replay,
}

/// What a run does, after `--quick` and the defaults are applied.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) duration: Duration,
    pub(crate) repetitions: u32,
    pub(crate) warmup: Duration,
    pub(crate) connections: u32,
    pub(crate) events: u32,
    pub(crate) round_trips: u32,
    pub(crate) mixed_duration: Duration,
    pub(crate) mixed_warmup: Duration,
    pub(crate) mixed_users: u32,
    pub(crate) soak: Option<Duration>,
    pub(crate) groups: Vec<Group>,
}

/// The floors measured in this run, for the ratios.
#[derive(Debug, Default)]
struct Floors {
    redis_ping: Option<RoundTrip>,
    redis_client_ping: Option<RoundTrip>,
    hello: Option<Series>,
    feed: Option<Series>,
    like: Option<Series>,
}

/// The users and posts the request-path comparisons act on.
#[derive(Debug)]
struct World {
    viewer: Account,
    posters: Vec<Account>,
    posts: Vec<String>,
}

struct Suite {
    settings: Settings,
    bins: Binaries,
    out: PathBuf,
    http: reqwest::Client,
    wrk: Wrk,
    report: Arc<Mutex<Report>>,
    floors: Floors,
    /// The cached feed at c100, for the 1,000-connection comparison.
    cached_feed: Option<Series>,
}

/// Runs every selected group, recording into `report`.
pub(crate) async fn run(
    settings: Settings,
    bin_dir: Option<PathBuf>,
    out: PathBuf,
    report: Arc<Mutex<Report>>,
) -> anyhow::Result<()> {
    let bins = Binaries::locate(bin_dir)?;
    std::fs::create_dir_all(&out).with_context(|| format!("create {}", out.display()))?;
    let http = reqwest::Client::builder().build().context("HTTP client")?;
    let wrk = Wrk::new(out.join("wrk"))?;
    let mut suite = Suite {
        settings,
        bins,
        out,
        http,
        wrk,
        report,
        floors: Floors::default(),
        cached_feed: None,
    };
    suite.describe();
    suite.main_stack().await?;
    if suite.has(Group::Feedback) {
        suite.feedback().await?;
    }
    if suite.has(Group::Replay) {
        suite.replay().await?;
    }
    eprintln!("done");
    Ok(())
}

impl Suite {
    fn has(&self, group: Group) -> bool {
        self.settings.groups.contains(&group)
    }

    fn report(&self) -> MutexGuard<'_, Report> {
        self.report
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn shape(&self) -> Shape {
        Shape {
            threads: 2,
            connections: self.settings.connections,
            duration: self.settings.duration,
        }
    }

    /// Versions, machine and settings, for the record.
    fn describe(&self) {
        let first_line = |program: &str, args: &[&str]| {
            std::process::Command::new(program)
                .args(args)
                .output()
                .ok()
                .map(|o| {
                    let text = if o.stdout.is_empty() {
                        o.stderr
                    } else {
                        o.stdout
                    };
                    String::from_utf8_lossy(&text)
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .to_owned()
                })
                .unwrap_or_else(|| "not found".to_owned())
        };
        let s = &self.settings;
        let mut report = self.report();
        report.tool = format!("sidechain-bench {}", env!("CARGO_PKG_VERSION"));
        report.started_at = chrono::Utc::now().to_rfc3339();
        let environment = [
            (
                "cores",
                std::thread::available_parallelism()
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
            ),
            (
                "load average at start",
                std::fs::read_to_string("/proc/loadavg")
                    .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                    .unwrap_or_default(),
            ),
            ("kernel", first_line("uname", &["-r"])),
            ("nats-server", first_line("nats-server", &["--version"])),
            ("redis-server", first_line("redis-server", &["--version"])),
            ("wrk", first_line("wrk", &["--version"])),
            (
                "commit",
                first_line("git", &["describe", "--always", "--dirty"]),
            ),
        ];
        for (key, value) in environment {
            report.environment.insert(key.to_owned(), value);
        }
        let settings = [
            ("command", std::env::args().collect::<Vec<_>>().join(" ")),
            (
                "wrk runs",
                format!(
                    "wrk -t2 -c{} -d{}s --latency, {} warm-up, median of {}",
                    s.connections,
                    s.duration.as_secs(),
                    format_duration(s.warmup),
                    s.repetitions
                ),
            ),
            ("backlog events", s.events.to_string()),
            ("sequential round trips", s.round_trips.to_string()),
            (
                "mixed run",
                format!(
                    "{} users, 100 concurrent, {} warm-up + {}",
                    s.mixed_users,
                    format_duration(s.mixed_warmup),
                    format_duration(s.mixed_duration)
                ),
            ),
            (
                "soak",
                s.soak
                    .map(format_duration)
                    .unwrap_or_else(|| "no".to_owned()),
            ),
            (
                "groups",
                s.groups
                    .iter()
                    .map(|g| format!("{g:?}").to_lowercase())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ];
        for (key, value) in settings {
            report.settings.insert(key.to_owned(), value);
        }
    }

    /// Runs wrk on `target`: warm-up, repetitions, medians; keeps the CPU figures and runs.
    async fn measure(
        &self,
        label: &str,
        target: &Target,
        shape: Shape,
        before_each: impl AsyncFn() -> anyhow::Result<()>,
    ) -> anyhow::Result<Series> {
        let series = self
            .wrk
            .series(
                label,
                target,
                shape,
                self.settings.warmup,
                self.settings.repetitions,
                before_each,
            )
            .await?;
        let mut report = self.report();
        report
            .cpu
            .push((label.to_owned(), series.cpu_cores.clone()));
        report.detail(&format!("wrk: {label}"), &series);
        Ok(series)
    }

    /// Waits for `consumers` to catch up; notes it when they do not within the limit.
    async fn settle(&self, stack: &Stack, consumers: &[&str]) -> anyhow::Result<()> {
        if !stack.settle(consumers, SETTLE_LIMIT).await? {
            self.report().note(format!(
                "consumers {consumers:?} still had a backlog after {}s; the next run competed with it",
                SETTLE_LIMIT.as_secs()
            ));
        }
        Ok(())
    }

    /// The floors and every request-path comparison, on one stack.
    async fn main_stack(&mut self) -> anyhow::Result<()> {
        let request_paths = [Group::Feed, Group::Auth, Group::Like, Group::Mixed];
        if !self.has(Group::Floors) && !request_paths.iter().any(|g| self.has(*g)) {
            return Ok(());
        }
        eprintln!("starting nats-server, redis-server, the Gorse double and the services");
        let mut stack =
            Stack::start(&self.bins, &self.out.join("logs"), &self.http, &Kind::ALL).await?;
        let rss_start = self.rss(&stack).await;
        if self.has(Group::Floors) {
            self.floors(&stack).await?;
        }
        if request_paths.iter().any(|g| self.has(*g)) {
            eprintln!("setting up: a viewer, {POSTERS} posters with {POSTS_EACH} posts each");
            let api = Api::new(self.http.clone(), stack.base_url());
            let world = World::build(&api).await?;
            if self.has(Group::Feed) {
                self.feed(&mut stack, &world, &api).await?;
            }
            if self.has(Group::Auth) {
                self.auth(&mut stack, &world).await?;
            }
            if self.has(Group::Like) {
                self.like(&mut stack, &world).await?;
            }
            if self.has(Group::Mixed) {
                self.mixed(&mut stack, &world).await?;
            }
        }
        let rss_end = self.rss(&stack).await;
        let restarted: Vec<&'static str> = stack
            .services()
            .iter()
            .filter(|s| s.restarted())
            .map(|s| s.kind.name())
            .collect();
        self.rss_rows(&rss_start, &rss_end, &restarted);
        stack.stop().await;
        Ok(())
    }

    async fn floors(&mut self, stack: &Stack) -> anyhow::Result<()> {
        self.report()
            .section("Floors: minimal programs on the same stack, measured in this run");
        let n = self.settings.round_trips;
        let redis_port = port_of(&stack.redis.url())?;
        eprintln!("floors: Redis PING, NATS request/reply ({n} sequential each)");
        if let Some(ping) = floors::redis_benchmark(redis_port, n).await? {
            self.report().row(
                "Redis PING round trip (redis-benchmark -t ping -c 1)",
                "59 µs avg, ≈ 105 µs p99 (seed floor)",
                format!(
                    "avg {:.0} µs, p50 {:.0} µs, p99 {:.0} µs",
                    ping.avg_us, ping.p50_us, ping.p99_us
                ),
                "–",
                format!("{:.2}× seed avg", ping.avg_us / 59.0),
                Verdict::Info,
            );
            self.floors.redis_ping = Some(ping);
        } else {
            self.report()
                .note("redis-benchmark not found (apt-get install redis-tools); only the redis-rs PING floor was measured");
        }
        let ping = floors::redis_client_ping(&stack.redis.url(), n).await?;
        self.report().row(
            "Redis PING through redis-rs (the services' client), sequential",
            "≈ 65 µs (criterion rate_limit/redis_ping_floor, busy machine)",
            format!(
                "avg {:.0} µs, p50 {:.0} µs, p99 {:.0} µs",
                ping.avg_us, ping.p50_us, ping.p99_us
            ),
            "–",
            "–",
            Verdict::Info,
        );
        self.report().detail("floor: redis-rs ping", &ping);
        self.floors.redis_client_ping = Some(ping);
        let rr = floors::nats_request_reply(&stack.nats.url(), n).await?;
        self.report().row(
            "NATS request/reply round trip (sequential)",
            "175 µs p50 (seed floor)",
            format!(
                "p50 {:.0} µs, avg {:.0} µs, p99 {:.0} µs",
                rr.p50_us, rr.avg_us, rr.p99_us
            ),
            "–",
            format!("{:.2}× seed p50", rr.p50_us / 175.0),
            Verdict::Info,
        );
        self.report().detail("floor: nats request/reply", &rr);

        let logs = self.out.join("logs");
        let (nats, redis) = (stack.nats.url(), stack.redis.url());
        let mut measured = Vec::new();
        for (program, label, seed, seed_rps) in [
            (
                floors::Program::Hello,
                "floor: bare HTTP GET, 600 B JSON",
                "126.6k req/s, p99 4.5 ms (seed floor)",
                126_600.0,
            ),
            (
                floors::Program::Feed,
                "floor: HTTP → NATS request → Redis GET 600 B → reply",
                "27.9k req/s, p99 7.3 ms (seed floor)",
                27_900.0,
            ),
            (
                floors::Program::Like,
                "floor: HTTP POST → JetStream publish + ack → 202",
                "49.9k req/s, p99 5.1 ms (seed floor)",
                49_900.0,
            ),
        ] {
            eprintln!("{label}");
            let process = floors::start(
                &self.bins,
                &self.http,
                program,
                free_port(),
                &nats,
                &redis,
                &logs,
            )
            .await?;
            let target = match program {
                floors::Program::Like => Target::post_json(
                    process.url.clone(),
                    format!("{{\"activity_id\":\"{}\"}}", uuid::Uuid::now_v7()),
                ),
                floors::Program::Hello | floors::Program::Feed => Target::get(process.url.clone()),
            };
            let series = self
                .measure(label, &target, self.shape(), async || Ok(()))
                .await?;
            drop(process);
            self.report().row(
                label.trim_start_matches("floor: "),
                seed,
                series.summary(),
                "–",
                format!("{:.2}× seed req/s", series.rps / seed_rps),
                Verdict::Info,
            );
            measured.push((program, series));
        }
        for (program, series) in measured {
            match program {
                floors::Program::Hello => self.floors.hello = Some(series),
                floors::Program::Feed => self.floors.feed = Some(series),
                floors::Program::Like => self.floors.like = Some(series),
            }
        }
        Ok(())
    }

    async fn feed(&mut self, stack: &mut Stack, world: &World, api: &Api) -> anyhow::Result<()> {
        self.report().section(
            "Feed: GET /api/v1/feed/timeline?limit=20 (a viewer following 4 posters, a full 20-post page)",
        );
        let target = Target::get(format!(
            "{}/api/v1/feed/timeline?limit={PAGE}&offset=0",
            stack.base_url()
        ))
        .bearer(&world.viewer.token);
        eprintln!("feed: page cache on");
        let cached = self
            .measure(
                "feed, page cache on",
                &target,
                self.shape(),
                async || Ok(()),
            )
            .await?;

        eprintln!(
            "feed: invalidation delay (a followed poster posts; until the viewer's cached timeline shows it)"
        );
        let mut delays = Vec::new();
        for i in 0..5u32 {
            // The viewer's page is cached (just read under load, or read again here).
            api.timeline(&world.viewer, PAGE).await?;
            let poster = &world.posters[i as usize % world.posters.len()];
            let post = api.create_post(poster, 1000 + i).await?;
            let delay = api
                .wait_for_post(
                    &world.viewer,
                    PAGE,
                    &post,
                    Duration::from_millis(2),
                    Duration::from_secs(10),
                )
                .await?;
            delays.push(delay.as_secs_f64() * 1000.0);
        }

        eprintln!("feed: page cache off (cache service restarted with CACHE_PAGES=false)");
        stack
            .cache
            .start(&self.http, &[("CACHE_PAGES", "false")])
            .await?;
        let uncached = self
            .measure(
                "feed, page cache off (CACHE_PAGES=false)",
                &target,
                self.shape(),
                async || Ok(()),
            )
            .await;
        stack.cache.start(&self.http, &[]).await?;
        let uncached = uncached?;

        let floor = self.floors.feed.clone();
        let mut report = self.report();
        let size = format!(" ({:.0} B/response)", cached.bytes_per_response);
        match &floor {
            Some(floor) => {
                let ratio = cached.rps / floor.rps;
                report.row(
                    "Cached feed throughput (c100)",
                    "≥ 70 % of the cached-feed floor",
                    format!("{}{size}", rate(cached.rps)),
                    format!(
                        "floor {} ({:.0} B/response)",
                        rate(floor.rps),
                        floor.bytes_per_response
                    ),
                    format!("{:.0} %", ratio * 100.0),
                    Verdict::of(ratio >= 0.70),
                );
                let ratio = cached.p99_ms / floor.p99_ms;
                report.row(
                    "Cached feed p99 vs floor (c100)",
                    "≤ 1.5× the floor's p99",
                    format!("p99 {} (p50 {})", ms(cached.p99_ms), ms(cached.p50_ms)),
                    format!("floor p99 {} (p50 {})", ms(floor.p99_ms), ms(floor.p50_ms)),
                    format!("{ratio:.2}×"),
                    Verdict::of(ratio <= 1.5),
                );
            }
            None => report.row(
                "Cached feed (c100)",
                "≥ 70 % of the floor, p99 ≤ 1.5× (floors not measured in this run)",
                format!("{}{size}", cached.summary()),
                "–",
                "–",
                Verdict::Info,
            ),
        }
        report.row(
            "Cached feed p99 (100 concurrent)",
            "< 100 ms (aim < 10 ms)",
            format!("p99 {}", ms(cached.p99_ms)),
            "–",
            if cached.p99_ms < 10.0 {
                "within the aim".to_owned()
            } else {
                "–".to_owned()
            },
            Verdict::of(cached.p99_ms < 100.0 && cached.errors.total() == 0),
        );
        report.row(
            "Feed without the page cache (CACHE_PAGES=false)",
            "– (what the page cache saves)",
            uncached.summary(),
            format!("cached {}", cached.summary()),
            uncached.versus(&cached),
            Verdict::Info,
        );
        let max_delay = delays.iter().copied().fold(0.0, f64::max);
        report.row(
            "New post visible in a follower's cached timeline",
            "< 1 s (the system test's bound)",
            format!(
                "median {}, max {} (5 posts, timeline polled every 2 ms)",
                ms(wrk::median(&delays)),
                ms(max_delay)
            ),
            "–",
            "–",
            Verdict::of(max_delay < 1000.0),
        );
        report.detail("feed: invalidation delays ms", &delays);
        drop(report);
        self.cached_feed = Some(cached);
        Ok(())
    }

    async fn auth(&mut self, stack: &mut Stack, world: &World) -> anyhow::Result<()> {
        self.report()
            .section("Auth: GET /api/v1/auth/me (token check + session)");
        let target =
            Target::get(format!("{}/api/v1/auth/me", stack.base_url())).bearer(&world.viewer.token);
        eprintln!("auth: session caches on");
        let cached = self
            .measure(
                "auth /me, session caches on",
                &target,
                self.shape(),
                async || Ok(()),
            )
            .await?;
        eprintln!("auth: session caches off (edge and cache restarted with SESSION_CACHE_TTL=0)");
        stack
            .cache
            .start(&self.http, &[("SESSION_CACHE_TTL", "0")])
            .await?;
        stack
            .edge
            .start(&self.http, &[("SESSION_CACHE_TTL", "0")])
            .await?;
        let uncached = self
            .measure(
                "auth /me, session caches off (SESSION_CACHE_TTL=0)",
                &target,
                self.shape(),
                async || Ok(()),
            )
            .await;
        stack.cache.start(&self.http, &[]).await?;
        stack.edge.start(&self.http, &[]).await?;
        let uncached = uncached?;

        let hello = self.floors.hello.clone();
        let mut report = self.report();
        report.row(
            "Auth /me with the session caches (c100)",
            "p99 < 50 ms (aim < 5 ms)",
            cached.summary(),
            hello
                .as_ref()
                .map(|h| format!("bare HTTP floor {}", h.summary()))
                .unwrap_or_else(|| "–".to_owned()),
            hello
                .as_ref()
                .map(|h| {
                    format!(
                        "{:.0} % of floor req/s, p99 {:.2}×",
                        cached.rps / h.rps * 100.0,
                        cached.p99_ms / h.p99_ms
                    )
                })
                .unwrap_or_else(|| "–".to_owned()),
            Verdict::of(cached.p99_ms < 50.0 && cached.errors.total() == 0),
        );
        report.row(
            "Auth /me without session caches (SESSION_CACHE_TTL=0)",
            "– (what the session caches save)",
            uncached.summary(),
            format!("cached {}", cached.summary()),
            uncached.versus(&cached),
            Verdict::Info,
        );
        Ok(())
    }

    async fn like(&mut self, stack: &mut Stack, world: &World) -> anyhow::Result<()> {
        self.report().section(
            "Like: POST /api/v1/social/like (auth, post lookup, rate limit, JetStream publish + ack)",
        );
        let target = Target::post_json(
            format!("{}/api/v1/social/like", stack.base_url()),
            format!("{{\"activity_id\":\"{}\"}}", world.posts[0]),
        )
        .bearer(&world.viewer.token);
        let sequential = Shape {
            threads: 1,
            connections: 1,
            duration: self.settings.duration,
        };
        let cache_only = [subjects::CACHE_CONSUMER];
        // Sequential reads isolate the limiter: no events, so no consumer work in between.
        let me =
            Target::get(format!("{}/api/v1/auth/me", stack.base_url())).bearer(&world.viewer.token);

        eprintln!("like: Redis limiter, Gorse healthy");
        let healthy = self
            .measure(
                "like, Redis limiter, Gorse healthy",
                &target,
                self.shape(),
                async || self.settle(stack, &CONSUMERS).await,
            )
            .await?;
        let seq_redis = self
            .measure(
                "like, sequential (c1), Redis limiter",
                &target,
                sequential,
                async || self.settle(stack, &CONSUMERS).await,
            )
            .await?;
        let seq_me_redis = self
            .measure(
                "auth /me, sequential (c1), Redis limiter",
                &me,
                sequential,
                async || Ok(()),
            )
            .await?;

        eprintln!("like: Gorse stalled (the double answers after 10 s)");
        stack.gorse_control("latency_ms=10000").await?;
        let stalled = self
            .measure(
                "like, Gorse stalled (10 s)",
                &target,
                self.shape(),
                async || self.settle(stack, &cache_only).await,
            )
            .await;
        stack.gorse_control("latency_ms=0").await?;
        let stalled = stalled?;

        eprintln!("like: Gorse down (the double killed)");
        stack.kill_double();
        let down = self
            .measure("like, Gorse down", &target, self.shape(), async || {
                self.settle(stack, &cache_only).await
            })
            .await;
        stack.start_double().await?;
        let down = down?;
        eprintln!("like: waiting for the feedback service to catch up with Gorse back");
        self.settle(stack, &CONSUMERS).await?;

        eprintln!("like: in-process limiter (edge restarted with RATE_LIMIT_BACKEND=local)");
        stack
            .edge
            .start(&self.http, &[("RATE_LIMIT_BACKEND", "local")])
            .await?;
        let local = self
            .measure(
                "like, in-process limiter (RATE_LIMIT_BACKEND=local)",
                &target,
                self.shape(),
                async || self.settle(stack, &CONSUMERS).await,
            )
            .await;
        let off = if local.is_ok() {
            eprintln!("like: no limiter (edge restarted with RATE_LIMIT_BACKEND=off)");
            stack
                .edge
                .start(&self.http, &[("RATE_LIMIT_BACKEND", "off")])
                .await?;
            let off = self
                .measure(
                    "like, no limiter (RATE_LIMIT_BACKEND=off)",
                    &target,
                    self.shape(),
                    async || self.settle(stack, &CONSUMERS).await,
                )
                .await;
            let seq_off = self
                .measure(
                    "like, sequential (c1), no limiter",
                    &target,
                    sequential,
                    async || self.settle(stack, &CONSUMERS).await,
                )
                .await;
            let seq_me_off = self
                .measure(
                    "auth /me, sequential (c1), no limiter",
                    &me,
                    sequential,
                    async || Ok(()),
                )
                .await;
            match (off, seq_off, seq_me_off) {
                (Ok(off), Ok(seq_off), Ok(seq_me_off)) => Ok((off, seq_off, seq_me_off)),
                (Err(err), _, _) | (_, Err(err), _) | (_, _, Err(err)) => Err(err),
            }
        } else {
            Err(anyhow::anyhow!(
                "skipped after the failed local-limiter run"
            ))
        };
        stack.edge.start(&self.http, &[]).await?;
        let local = local?;
        let (off, seq_off, seq_me_off) = off?;

        let floor = self.floors.like.clone();
        let pings = (
            self.floors.redis_client_ping.clone(),
            self.floors.redis_ping.clone(),
        );
        let mut report = self.report();
        match &floor {
            Some(floor) => {
                let ratio = healthy.rps / floor.rps;
                report.row(
                    "Like throughput, Redis limiter (c100)",
                    "≥ 50 % of the like floor",
                    rate(healthy.rps),
                    format!("floor {}", rate(floor.rps)),
                    format!("{:.0} %", ratio * 100.0),
                    Verdict::of(ratio >= 0.50),
                );
                let ratio = healthy.p99_ms / floor.p99_ms;
                report.row(
                    "Like p99, Redis limiter (c100)",
                    "≤ 2× the like floor's p99",
                    format!("p99 {} (p50 {})", ms(healthy.p99_ms), ms(healthy.p50_ms)),
                    format!("floor p99 {} (p50 {})", ms(floor.p99_ms), ms(floor.p50_ms)),
                    format!("{ratio:.2}×"),
                    Verdict::of(ratio <= 2.0 && healthy.errors.total() == 0),
                );
            }
            None => report.row(
                "Like, Redis limiter (c100)",
                "≥ 50 % of the floor, p99 ≤ 2× (floors not measured in this run)",
                healthy.summary(),
                "–",
                "–",
                Verdict::Info,
            ),
        }
        report.row(
            "Like, in-process limiter (RATE_LIMIT_BACKEND=local)",
            "–",
            local.summary(),
            format!("Redis limiter {}", healthy.summary()),
            local.versus(&healthy),
            Verdict::Info,
        );
        report.row(
            "Like, no limiter (RATE_LIMIT_BACKEND=off)",
            "–",
            off.summary(),
            format!("Redis limiter {}", healthy.summary()),
            format!(
                "Redis limiter keeps {:.0} % of the throughput",
                healthy.rps / off.rps * 100.0
            ),
            Verdict::Info,
        );
        let (client_ping, tool_ping) = pings;
        let ping_text = [
            client_ping
                .as_ref()
                .map(|p| format!("redis-rs PING p50 {:.0} µs", p.p50_us)),
            tool_ping
                .as_ref()
                .map(|p| format!("redis-benchmark p50 {:.0} µs", p.p50_us)),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("; ");
        for (label, with, without, judged) in [
            (
                "Rate limiter added latency (sequential /me, p50 Redis limiter − p50 off)",
                &seq_me_redis,
                &seq_me_off,
                true,
            ),
            (
                "Rate limiter added latency (sequential like, p50 Redis limiter − p50 off)",
                &seq_redis,
                &seq_off,
                false,
            ),
        ] {
            let added_ms = with.p50_ms - without.p50_ms;
            report.row(
                label,
                "< 1 ms (aim ≈ one Redis round trip)",
                format!(
                    "{:+.0} µs (p50 {} vs {})",
                    added_ms * 1000.0,
                    ms(with.p50_ms),
                    ms(without.p50_ms)
                ),
                if ping_text.is_empty() {
                    "–".to_owned()
                } else {
                    ping_text.clone()
                },
                client_ping
                    .as_ref()
                    .map(|p| format!("{:.1} round trips", added_ms * 1000.0 / p.p50_us))
                    .unwrap_or_else(|| "–".to_owned()),
                if judged {
                    Verdict::of(added_ms < 1.0)
                } else {
                    Verdict::Info
                },
            );
        }

        report.section(
            "Gorse: likes while Gorse is healthy, stalled, down (feedback never blocks a request)",
        );
        for (label, series, what) in [
            (
                "Like p99, Gorse stalled (double answers after 10 s)",
                &stalled,
                "stalled",
            ),
            ("Like p99, Gorse down (double killed)", &down, "down"),
        ] {
            let ratio = series.p99_ms / healthy.p99_ms;
            report.row(
                label,
                "unchanged (within ±25 % of healthy)",
                series.summary(),
                format!("healthy {}", healthy.summary()),
                series.versus(&healthy),
                Verdict::of(ratio <= 1.25 && series.errors.total() == 0),
            );
            report.detail(&format!("gorse {what}: like p99 ratio"), ratio);
        }
        Ok(())
    }

    async fn mixed(&mut self, stack: &mut Stack, world: &World) -> anyhow::Result<()> {
        self.report()
            .section("Mixed: sidechain-load --scenario mixed, 100 concurrent (closed loop)");
        let s = self.settings.clone();
        eprintln!(
            "mixed: {} users set up, {} warm-up, {} measured",
            s.mixed_users,
            format_duration(s.mixed_warmup),
            format_duration(s.mixed_duration)
        );
        let before = metrics::scrape(&self.http, stack.cache.metrics_port).await?;
        let result = self
            .load_run(
                stack,
                s.mixed_duration,
                s.mixed_warmup,
                &self.out.join("mixed"),
            )
            .await?;
        let after = metrics::scrape(&self.http, stack.cache.metrics_port).await?;
        self.mixed_rows(&result, &before, &after);

        eprintln!("connections: the cached feed at wrk -t2 -c1000");
        let target = Target::get(format!(
            "{}/api/v1/feed/timeline?limit={PAGE}&offset=0",
            stack.base_url()
        ))
        .bearer(&world.viewer.token);
        let shape = Shape {
            threads: 2,
            connections: 1000,
            duration: self.settings.duration,
        };
        let run = self.wrk.run(&target, shape).await?;
        let baseline = self.cached_feed.clone();
        {
            let mut report = self.report();
            report.row(
                "1,000 connections on the cached feed (wrk -t2 -c1000)",
                "100 concurrent clients without errors (aim 1,000)",
                format!(
                    "{}, p50 {}, p99 {}, errors: {}",
                    rate(run.rps),
                    ms(run.p50_ms),
                    ms(run.p99_ms),
                    run.errors.describe()
                ),
                baseline
                    .as_ref()
                    .map(|b| format!("c{} {}", s.connections, b.summary()))
                    .unwrap_or_else(|| "–".to_owned()),
                baseline
                    .as_ref()
                    .map(|b| format!("{:.2}× throughput", run.rps / b.rps))
                    .unwrap_or_else(|| "–".to_owned()),
                Verdict::of(run.errors.total() == 0),
            );
            report.cpu.push((
                "feed at 1,000 connections".to_owned(),
                run.cpu_cores.clone(),
            ));
            report.detail("wrk: feed at 1,000 connections", &run);
        }

        if let Some(soak) = s.soak {
            self.soak(stack, soak).await?;
        }
        Ok(())
    }

    /// Runs `sidechain-load run --scenario mixed` against the stack; answers result.json.
    async fn load_run(
        &self,
        stack: &Stack,
        duration: Duration,
        warmup: Duration,
        out: &Path,
    ) -> anyhow::Result<Value> {
        std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
        let log_path = out.join("sidechain-load.log");
        let log = std::fs::File::create(&log_path).context("sidechain-load log")?;
        let args = [
            "run".to_owned(),
            "--base-url".to_owned(),
            stack.base_url(),
            "--scenario".to_owned(),
            "mixed".to_owned(),
            "--concurrency".to_owned(),
            "100".to_owned(),
            "--duration".to_owned(),
            format!("{}ms", duration.as_millis()),
            "--warmup".to_owned(),
            format!("{}ms", warmup.as_millis()),
            "--users".to_owned(),
            self.settings.mixed_users.to_string(),
            "--seed".to_owned(),
            "42".to_owned(),
            "--out".to_owned(),
            out.display().to_string(),
            "--quiet".to_owned(),
        ];
        self.report().detail(
            &format!("command: {}", out.display()),
            format!("sidechain-load {}", args.join(" ")),
        );
        let status = tokio::process::Command::new(&self.bins.load)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().context("log")?)
            .stderr(log)
            .kill_on_drop(true)
            .status()
            .await
            .context("run sidechain-load")?;
        if !status.success() {
            bail!(
                "sidechain-load failed ({status}):\n{}",
                crate::stack::tail(&std::fs::read_to_string(&log_path).unwrap_or_default(), 30)
            );
        }
        let text = std::fs::read_to_string(out.join("result.json"))
            .context("read sidechain-load's result.json")?;
        serde_json::from_str(&text).context("parse result.json")
    }

    fn mixed_rows(&self, result: &Value, before: &Scrape, after: &Scrape) {
        let mut report = self.report();
        let op_text = |op: &Value| {
            let errors = op["errors"].as_u64().unwrap_or(0);
            let mut text = format!(
                "{}, p50 {}, p99 {}",
                rate(op["throughput_rps"].as_f64().unwrap_or(0.0)),
                ms(op["latency_ms"]["p50"].as_f64().unwrap_or(0.0)),
                ms(op["latency_ms"]["p99"].as_f64().unwrap_or(0.0)),
            );
            if errors > 0 {
                text.push_str(&format!(", {errors} errors {}", op["errors_by_status"]));
            } else {
                text.push_str(", no errors");
            }
            text
        };
        let total = &result["total"];
        let errors = total["errors"].as_u64().unwrap_or(0);
        report.row(
            "Mixed, all requests (100 concurrent)",
            "100 concurrent clients without errors",
            op_text(total),
            "–",
            "–",
            Verdict::of(errors == 0 && total["requests"].as_u64().unwrap_or(0) > 0),
        );
        let operations = result["operations"].as_array().cloned().unwrap_or_default();
        for op in &operations {
            let name = op["operation"].as_str().unwrap_or("?");
            let p99 = op["latency_ms"]["p99"].as_f64().unwrap_or(0.0);
            let (target, verdict) = match name {
                "timeline" | "unified" | "trending" | "user_posts" => {
                    ("feed p99 < 100 ms (aim < 10 ms)", Verdict::of(p99 < 100.0))
                }
                "auth_me" => ("p99 < 50 ms (aim < 5 ms)", Verdict::of(p99 < 50.0)),
                _ => ("–", Verdict::Info),
            };
            report.row(
                format!("Mixed: {name}"),
                target,
                op_text(op),
                "–",
                "–",
                verdict,
            );
        }
        let name = "sidechain_cache_page_requests_total";
        let delta = |result: &str| {
            after.sum(name, &[("result", result)]) - before.sum(name, &[("result", result)])
        };
        let (memory, redis, miss, coalesced) = (
            delta("hit_memory"),
            delta("hit_redis"),
            delta("miss"),
            delta("coalesced"),
        );
        let all = memory + redis + miss + coalesced;
        if all > 0.0 {
            let ratio = 1.0 - miss / all;
            report.row(
                "Page cache hit ratio in the mixed run (1 − miss/total)",
                "> 70 % (aim > 90 %)",
                format!("{:.1} %", ratio * 100.0),
                format!(
                    "{all:.0} page requests: memory {memory:.0}, Redis {redis:.0}, coalesced {coalesced:.0}, miss {miss:.0}"
                ),
                if ratio > 0.9 {
                    "within the aim".to_owned()
                } else {
                    "–".to_owned()
                },
                Verdict::of(ratio > 0.70),
            );
        } else {
            report.note("the cache service counted no page requests during the mixed run");
        }
        let mut summary = serde_json::Map::new();
        for key in [
            "parameters",
            "setup",
            "measured_seconds",
            "total",
            "errors_by_status",
        ] {
            summary.insert(key.to_owned(), result[key].clone());
        }
        let ops: Vec<Value> = operations
            .iter()
            .map(|op| {
                serde_json::json!({
                    "operation": op["operation"], "requests": op["requests"], "errors": op["errors"],
                    "throughput_rps": op["throughput_rps"], "latency_ms": op["latency_ms"],
                    "errors_by_status": op["errors_by_status"],
                })
            })
            .collect();
        summary.insert("operations".to_owned(), Value::Array(ops));
        summary.insert(
            "page_requests".to_owned(),
            serde_json::json!({"hit_memory": memory, "hit_redis": redis, "coalesced": coalesced, "miss": miss}),
        );
        report.detail("mixed", Value::Object(summary));
    }

    /// The mixed scenario for `soak`, with each service's RSS sampled every 30 s.
    async fn soak(&self, stack: &Stack, soak: Duration) -> anyhow::Result<()> {
        self.report().section(&format!(
            "Soak: the mixed scenario for {}, RSS of every service",
            format_duration(soak)
        ));
        eprintln!("soak: {}", format_duration(soak));
        let start = Instant::now();
        let mut samples: Vec<(f64, BTreeMap<&'static str, f64>)> =
            vec![(0.0, self.rss(stack).await)];
        let out = self.out.join("soak");
        let result = {
            let load = self.load_run(stack, soak, Duration::from_secs(5), &out);
            tokio::pin!(load);
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            tick.tick().await;
            loop {
                tokio::select! {
                    result = &mut load => break result?,
                    _ = tick.tick() => {
                        let sample = self.rss(stack).await;
                        samples.push((start.elapsed().as_secs_f64(), sample));
                    }
                }
            }
        };
        samples.push((start.elapsed().as_secs_f64(), self.rss(stack).await));
        let mut report = self.report();
        let total = &result["total"];
        report.row(
            "Soak, all requests",
            "100 concurrent clients without errors",
            format!(
                "{}, p50 {}, p99 {}, {} errors",
                rate(total["throughput_rps"].as_f64().unwrap_or(0.0)),
                ms(total["latency_ms"]["p50"].as_f64().unwrap_or(0.0)),
                ms(total["latency_ms"]["p99"].as_f64().unwrap_or(0.0)),
                total["errors"].as_u64().unwrap_or(0)
            ),
            "–",
            "–",
            Verdict::of(total["errors"].as_u64() == Some(0)),
        );
        for kind in Kind::ALL {
            let name = kind.name();
            let series: Vec<(f64, f64)> = samples
                .iter()
                .filter_map(|(t, rss)| rss.get(name).map(|v| (*t, *v)))
                .collect();
            let (Some(first), Some(last)) = (series.first(), series.last()) else {
                continue;
            };
            // Caches fill during the first minute; growth is judged from then on.
            let warm = series.iter().find(|(t, _)| *t >= 60.0).unwrap_or(first);
            let growth = (last.1 - warm.1) / warm.1;
            report.row(
                format!("RSS of {name} over the soak"),
                "no memory growth (≤ 10 % after the first minute)",
                format!(
                    "start {}, at {:.0} s {}, end {}",
                    mb(first.1),
                    warm.0,
                    mb(warm.1),
                    mb(last.1)
                ),
                "–",
                format!("{:+.1} % after the first minute", growth * 100.0),
                Verdict::of(growth <= 0.10),
            );
        }
        let json: Vec<Value> = samples
            .iter()
            .map(|(t, rss)| serde_json::json!({"seconds": t, "rss_bytes": rss}))
            .collect();
        report.detail("soak: rss samples", json);
        Ok(())
    }

    /// RSS of each running service (`sidechain_process_resident_memory_bytes`).
    async fn rss(&self, stack: &Stack) -> BTreeMap<&'static str, f64> {
        let mut rss = BTreeMap::new();
        for service in stack.services() {
            let kind = service.kind;
            if !service.running() {
                continue;
            }
            if let Ok(scrape) = metrics::scrape(&self.http, service.metrics_port).await {
                let bytes = scrape.sum("sidechain_process_resident_memory_bytes", &[]);
                if bytes > 0.0 {
                    rss.insert(kind.name(), bytes);
                }
            }
        }
        rss
    }

    fn rss_rows(
        &self,
        start: &BTreeMap<&'static str, f64>,
        end: &BTreeMap<&'static str, f64>,
        restarted: &[&str],
    ) {
        let mut report = self.report();
        report.section("Memory: RSS of every service at the start and the end of the run");
        for kind in Kind::ALL {
            let name = kind.name();
            let (Some(first), Some(last)) = (start.get(name), end.get(name)) else {
                continue;
            };
            let restarted = restarted.contains(&name);
            report.row(
                format!("RSS of {name}"),
                "recorded at start and end (no growth under a 10-minute soak: --soak 10m)",
                format!("{} → {}", mb(*first), mb(*last)),
                "–",
                format!(
                    "{:.2}×{}",
                    last / first,
                    if restarted {
                        " (restarted during the run for settings switches: end is the last instance)"
                    } else {
                        ""
                    }
                ),
                Verdict::Info,
            );
        }
        report.detail("rss start bytes", start);
        report.detail("rss end bytes", end);
    }

    /// The feedback service drains a backlog of likes into the Gorse double.
    async fn feedback(&mut self) -> anyhow::Result<()> {
        let n = self.settings.events;
        self.report().section(&format!(
            "Feedback: a fresh feedback service drains {n} likes into the Gorse double"
        ));
        eprintln!("feedback: storing {n} likes in a fresh stream");
        let mut stack =
            Stack::start(&self.bins, &self.out.join("logs/feedback"), &self.http, &[]).await?;
        let published = backlog::publish(&stack.js, backlog::likes(n)).await?;
        eprintln!(
            "feedback: stored in {:.2} s; starting the feedback service",
            published.seconds
        );
        let port = stack.feedback.metrics_port;
        let limit = Duration::from_secs(60 + u64::from(n) / 200);
        let http = self.http.clone();
        let start = Instant::now();
        let done = wait_for_metric(
            &http,
            port,
            "sidechain_feedback_items_sent_total",
            f64::from(n),
            limit,
        );
        let (started, done) = tokio::join!(stack.feedback.start(&self.http, &[]), done);
        started?;
        done?;
        let elapsed = start.elapsed().as_secs_f64();
        let scrape = metrics::scrape(&self.http, port).await?;
        let record = stack.gorse_record().await?;
        stack.stop().await;

        let received = record["feedback_received"].as_u64().unwrap_or(0);
        let batches = record["feedback_batches"].as_u64().unwrap_or(0);
        let fill = scrape.sum("sidechain_feedback_batch_size_sum", &[])
            / scrape
                .sum("sidechain_feedback_batch_size_count", &[])
                .max(1.0);
        let throughput = f64::from(n) / elapsed;
        let mut report = self.report();
        report.row(
            format!("Feedback throughput ({n} likes waiting, from process start)"),
            "– (feedback never blocks a request)",
            format!("{throughput:.0} events/s ({n} in {elapsed:.2} s)"),
            format!(
                "storing them: JetStream publish, 256 in flight, {:.0} events/s",
                published.rate
            ),
            format!("{:.2}×", throughput / published.rate),
            Verdict::Info,
        );
        report.row(
            "Feedback batch fill (messages per batch)",
            "GORSE_BATCH_SIZE = 100",
            format!("{fill:.1} per batch ({batches} feedback PUTs)"),
            "100",
            format!("{:.0} %", fill),
            Verdict::Info,
        );
        report.row(
            "Feedback rows the Gorse double received",
            format!("{n} (each like once)"),
            received.to_string(),
            n.to_string(),
            format!("{:.3}×", received as f64 / f64::from(n)),
            Verdict::of(received >= u64::from(n)),
        );
        report.detail(
            "feedback",
            serde_json::json!({"events": n, "seconds": elapsed, "events_per_second": throughput,
                "received": received, "batches": batches, "fill": fill, "published": published}),
        );
        Ok(())
    }

    /// A fresh cache service replays the stream into an empty Redis.
    async fn replay(&mut self) -> anyhow::Result<()> {
        let n = self.settings.events;
        self.report().section(&format!(
            "Replay: a fresh cache service rebuilds the read models from {n} events"
        ));
        eprintln!("replay: storing {n} events (registrations, posts, follows, likes)");
        let mut stack =
            Stack::start(&self.bins, &self.out.join("logs/replay"), &self.http, &[]).await?;
        let published = backlog::publish(&stack.js, backlog::history(n, 42)).await?;
        let last = stack.last_sequence().await?;
        eprintln!("replay: starting the cache service on an empty Redis");
        let port = stack.cache.metrics_port;
        let limit = Duration::from_secs(60 + u64::from(n) / 200);
        let http = self.http.clone();
        let start = Instant::now();
        let done = wait_for_metric(
            &http,
            port,
            "sidechain_cache_applied_sequence",
            last as f64,
            limit,
        );
        let (started, done) = tokio::join!(stack.cache.start(&self.http, &[]), done);
        started?;
        done?;
        let elapsed = start.elapsed().as_secs_f64();
        stack.stop().await;
        let throughput = published.events as f64 / elapsed;
        let mut report = self.report();
        report.row(
            format!(
                "Replay into an empty Redis ({} events, from process start)",
                published.events
            ),
            "– (Redis can be rebuilt from the stream)",
            format!(
                "{throughput:.0} events/s ({} in {elapsed:.2} s)",
                published.events
            ),
            format!(
                "storing them: JetStream publish, 256 in flight, {:.0} events/s",
                published.rate
            ),
            format!("{:.2}×", throughput / published.rate),
            Verdict::Info,
        );
        report.detail(
            "replay",
            serde_json::json!({"events": published.events, "seconds": elapsed,
                "events_per_second": throughput, "last_sequence": last, "published": published}),
        );
        Ok(())
    }
}

impl World {
    /// A viewer following `POSTERS` posters with `POSTS_EACH` posts each, checked visible in
    /// the viewer's timeline; the first post liked once (so its lookup is warm).
    async fn build(api: &Api) -> anyhow::Result<Self> {
        let run = uuid::Uuid::new_v4().simple().to_string();
        let run = &run[..8];
        let viewer = api.register(&format!("viewer_{run}")).await?;
        let mut posters = Vec::new();
        let mut posts = Vec::new();
        for i in 0..POSTERS {
            let poster = api.register(&format!("poster{i}_{run}")).await?;
            for n in 0..POSTS_EACH {
                posts.push(api.create_post(&poster, i * 100 + n).await?);
            }
            posters.push(poster);
        }
        for poster in &posters {
            api.follow(&viewer, poster).await?;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let page = api.timeline(&viewer, PAGE).await?;
            if posts.iter().all(|p| page.contains(p)) {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "the viewer's timeline shows {} of the {} posts after 30 s",
                    page.len(),
                    posts.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        api.like(&viewer, &posts[0]).await?;
        api.me(&viewer).await?;
        Ok(Self {
            viewer,
            posters,
            posts,
        })
    }
}

/// Polls a service's metric until it reaches `at_least` (scrape errors while the service
/// starts are ignored).
async fn wait_for_metric(
    http: &reqwest::Client,
    port: u16,
    name: &str,
    at_least: f64,
    limit: Duration,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut last = 0.0;
    loop {
        if let Ok(scrape) = metrics::scrape(http, port).await {
            last = scrape.sum(name, &[]);
            if last >= at_least {
                return Ok(());
            }
        }
        if start.elapsed() > limit {
            bail!(
                "{name} reached {last} of {at_least} in {}s",
                limit.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The port of `scheme://host:port`.
fn port_of(url: &str) -> anyhow::Result<u16> {
    url.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .with_context(|| format!("no port in {url}"))
}

/// `12.3 MB`.
fn mb(bytes: f64) -> String {
    format!("{:.1} MB", bytes / 1e6)
}

/// `90s`, `10m`, `1.5s`.
fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs >= 60.0 && secs % 60.0 == 0.0 {
        format!("{}m", secs / 60.0)
    } else {
        format!("{secs}s")
    }
}
