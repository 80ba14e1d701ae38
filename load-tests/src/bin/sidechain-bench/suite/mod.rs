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
//!
//! One file per measurement: `floors`, `feed`, `auth_me`, `like`, `mixed`, `soak`, `memory`
//! (on the main stack), `feedback`, `replay` (each on a fresh stack); `describe` records the
//! run. [`Suite::with_settings`] is the one way a measurement switches a setting.

mod auth_me;
mod describe;
mod feed;
mod feedback;
mod floors;
mod like;
mod memory;
mod mixed;
mod replay;
mod soak;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::ValueEnum;
use sidechain_events::subjects;

use crate::api::{Account, Api};
use crate::floors::RoundTrip;
use crate::metrics;
use crate::report::Report;
use crate::stack::{Binaries, Kind, Stack};
use crate::wrk::{Series, Shape, Target, Wrk};

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

    /// Restarts `services` (in that order) with `settings` over their base settings, runs
    /// `measure` against the changed stack, then restarts them with their base settings
    /// again, also when `measure` failed (its error is returned after the restore).
    async fn with_settings<T>(
        &self,
        stack: &mut Stack,
        services: &[Kind],
        settings: &[(&'static str, &str)],
        measure: impl AsyncFnOnce(&Stack) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        for kind in services {
            stack.service(*kind).start(&self.http, settings).await?;
        }
        let measured = measure(stack).await;
        for kind in services {
            stack.service(*kind).start(&self.http, &[]).await?;
        }
        measured
    }

    /// Starts the `kind` service and answers the seconds from its start until its metric
    /// `name` reaches `at_least` (a backlog drained); the limit grows with the backlog.
    async fn time_until_metric(
        &self,
        stack: &mut Stack,
        kind: Kind,
        name: &str,
        at_least: f64,
    ) -> anyhow::Result<f64> {
        let limit = Duration::from_secs(60 + u64::from(self.settings.events) / 200);
        let service = stack.service(kind);
        let port = service.metrics_port;
        let start = Instant::now();
        let done = wait_for_metric(&self.http, port, name, at_least, limit);
        let (started, done) = tokio::join!(service.start(&self.http, &[]), done);
        started?;
        done?;
        Ok(start.elapsed().as_secs_f64())
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
