//! The measured phase: worker tasks that make the scenario's requests for the warm-up and
//! then the measured duration, the pacing, and the progress line.
//!
//! Pacing: without `--rate` each of the `--concurrency` workers sends its next request as
//! soon as the previous one is answered (closed loop; after a 429 it waits `Retry-After`,
//! after a transport failure 100 ms, so a dead server is not spun on). With `--rate`
//! request *n* is due at `start + n / rate` whatever happens (open loop): a free worker takes
//! the next due request, waits for its time and sends it, and its latency is measured from
//! the time it was due, so when the server (or the worker pool) falls behind, the queueing
//! shows in the latency instead of being left out (coordinated omission). Requests still
//! waiting for a worker when the time is up are not sent and are reported as `unsent`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, TimeDelta, Utc};
use rand::SeedableRng as _;
use rand::rngs::SmallRng;
use reqwest::StatusCode;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::cli::Scenario;
use crate::client::{self, ApiClient, Outcome, WriteAck, error_label};
use crate::scenario::{Operation, Planned, Planner, Scratch};
use crate::setup::World;
use crate::stats::{Recorder, Summary, round3};
use crate::writes::{WriteLog, WriteRecord};

/// Pause of a closed-loop worker after a transport failure.
const FAILURE_PAUSE: Duration = Duration::from_millis(100);
/// Pause after a 429 without a usable `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// How to load the world.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// The workload.
    pub scenario: Scenario,
    /// Workers (requests in flight at most).
    pub concurrency: usize,
    /// Measured time.
    pub duration: Duration,
    /// Unmeasured load before it.
    pub warmup: Duration,
    /// Open-loop requests per second; closed loop when `None`.
    pub rate: Option<f64>,
    /// Seed of the workers' choices.
    pub seed: u64,
    /// No progress line.
    pub quiet: bool,
}

/// What the measured phase produced.
#[derive(Debug)]
pub struct Measurement {
    /// Latencies, errors and the series.
    pub summary: Summary,
    /// When measurement began (after the warm-up).
    pub started_at: DateTime<Utc>,
    /// When the last measured request finished.
    pub ended_at: DateTime<Utc>,
    /// Measured time (throughput is over this).
    pub elapsed: Duration,
    /// Requests made during the warm-up (not measured).
    pub warmup_requests: u64,
    /// Open loop: requests due before the end that no worker was free to send.
    pub unsent: Option<u64>,
}

#[derive(Debug)]
struct OpenLoop {
    /// Seconds between two due times.
    period: f64,
    /// Next request number to hand out.
    next: AtomicU64,
    /// Requests actually sent.
    sent: AtomicU64,
}

#[derive(Debug)]
enum Pacing {
    Closed,
    Open(OpenLoop),
}

#[derive(Debug)]
struct Shared {
    client: ApiClient,
    world: World,
    planner: Planner,
    recorder: Mutex<Recorder>,
    pacing: Pacing,
    writes: Option<WriteLog>,
    start: Instant,
    start_wall: DateTime<Utc>,
    measure_start: Instant,
    end: Instant,
    warmup_requests: AtomicU64,
}

impl Shared {
    fn recorder(&self) -> MutexGuard<'_, Recorder> {
        // A panicking worker cannot leave the recorder half-updated in a way that matters.
        self.recorder.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wall_time(&self, at: Instant) -> DateTime<Utc> {
        self.start_wall
            + TimeDelta::from_std(at.saturating_duration_since(self.start)).unwrap_or_default()
    }
}

/// Runs the warm-up and the measured phase on `world` and returns what was measured.
pub async fn measure(
    client: ApiClient,
    world: World,
    plan: &LoadPlan,
    writes: Option<WriteLog>,
) -> anyhow::Result<Measurement> {
    let planner = Planner::new(plan.scenario, world.users.len(), world.posts.len())?;
    let recorder = Recorder::new(&planner.operations())?;
    let pacing = match plan.rate {
        Some(rate) => Pacing::Open(OpenLoop {
            period: 1.0 / rate,
            next: AtomicU64::new(0),
            sent: AtomicU64::new(0),
        }),
        None => Pacing::Closed,
    };
    let start = Instant::now();
    let measure_start = start + plan.warmup;
    let shared = Arc::new(Shared {
        client,
        world,
        planner,
        recorder: Mutex::new(recorder),
        pacing,
        writes,
        start,
        start_wall: Utc::now(),
        measure_start,
        end: measure_start + plan.duration,
        warmup_requests: AtomicU64::new(0),
    });

    let (stop, stopped) = oneshot::channel();
    let progress = (!plan.quiet).then(|| tokio::spawn(progress(shared.clone(), stopped)));

    let mut workers = JoinSet::new();
    for worker_number in 0..plan.concurrency {
        let seed = plan
            .seed
            .wrapping_add(0x9E37_79B9_7F4A_7C15_u64.wrapping_mul(worker_number as u64 + 1));
        workers.spawn(worker(shared.clone(), seed));
    }
    while let Some(joined) = workers.join_next().await {
        joined.context("a worker panicked")?;
    }
    let finished = Instant::now();
    let _ = stop.send(());
    if let Some(progress) = progress {
        progress.await.context("the progress task panicked")?;
    }

    let elapsed = finished.saturating_duration_since(measure_start);
    let unsent = match &shared.pacing {
        Pacing::Closed => None,
        Pacing::Open(open) => {
            let due_secs = shared.end.saturating_duration_since(start).as_secs_f64();
            let due = (due_secs / open.period).ceil() as u64;
            Some(due.saturating_sub(open.sent.load(Ordering::Relaxed)))
        }
    };
    let measurement = Measurement {
        summary: shared.recorder().summary(elapsed, plan.duration),
        started_at: shared.wall_time(measure_start),
        ended_at: shared.wall_time(finished),
        elapsed,
        warmup_requests: shared.warmup_requests.load(Ordering::Relaxed),
        unsent,
    };
    // Dropping the last reference closes the write log.
    drop(shared);
    Ok(measurement)
}

/// One worker: takes requests until the time is up.
async fn worker(shared: Arc<Shared>, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut scratch = Scratch::default();
    loop {
        let due = match &shared.pacing {
            Pacing::Closed => {
                let now = Instant::now();
                if now >= shared.end {
                    break;
                }
                now
            }
            Pacing::Open(open) => {
                let n = open.next.fetch_add(1, Ordering::Relaxed);
                let offset = Duration::from_secs_f64(n as f64 * open.period);
                let due = shared.start + offset;
                // Past the end, or so far behind that the end came first: stop.
                if due >= shared.end || Instant::now() >= shared.end {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                open.sent.fetch_add(1, Ordering::Relaxed);
                due
            }
        };
        let planned = shared.planner.plan(&mut rng, &shared.world, &mut scratch);
        let actor = &shared.world.users[planned.actor];
        let outcome = client::send(&shared.client, Some(&actor.token), &planned.call, None).await;
        let done = Instant::now();
        let latency = done.saturating_duration_since(due);
        let error = error_label(&outcome);
        let measured = due >= shared.measure_start;
        if measured {
            let second = done
                .saturating_duration_since(shared.measure_start)
                .as_secs();
            shared
                .recorder()
                .record(planned.op, latency, error.as_deref(), second);
        } else {
            shared.warmup_requests.fetch_add(1, Ordering::Relaxed);
        }
        if planned.op.is_write()
            && let Some(log) = &shared.writes
        {
            let record = write_record(&shared, &planned, &outcome, due, latency, measured);
            log.record(record).await;
        }
        if matches!(shared.pacing, Pacing::Closed) {
            let pause = match &outcome {
                Ok(reply) if reply.status == StatusCode::TOO_MANY_REQUESTS => {
                    reply.retry_after().unwrap_or(DEFAULT_RETRY_AFTER)
                }
                Ok(_) => Duration::ZERO,
                Err(_) => FAILURE_PAUSE,
            };
            if !pause.is_zero() {
                tokio::time::sleep_until((Instant::now() + pause).min(shared.end).into()).await;
            }
        }
    }
}

fn write_record(
    shared: &Shared,
    planned: &Planned<'_>,
    outcome: &Outcome,
    due: Instant,
    latency: Duration,
    measured: bool,
) -> WriteRecord {
    let (status, error, retry_after, ack) = match outcome {
        Ok(reply) => {
            let ack = if reply.status.is_success() {
                serde_json::from_slice::<WriteAck>(&reply.body).unwrap_or_default()
            } else {
                WriteAck::default()
            };
            (
                Some(reply.status.as_u16()),
                None,
                reply.has_retry_after(),
                ack,
            )
        }
        Err(failure) => (
            None,
            Some(failure.kind.label().to_owned()),
            false,
            WriteAck::default(),
        ),
    };
    let target_id = match planned.op {
        Operation::Post => ack.id.clone(),
        _ => planned.target.map(str::to_owned),
    };
    WriteRecord {
        op: planned.op.name().to_owned(),
        status,
        error,
        retry_after,
        event_id: ack.event_id,
        target_id,
        id: ack.id,
        user_id: shared.world.users[planned.actor].id.clone(),
        at: shared.wall_time(due),
        latency_ms: round3(latency.as_secs_f64() * 1000.0),
        phase: if measured { "measure" } else { "warmup" }.to_owned(),
    }
}

/// Prints a line every second until told to stop: warm-up request rate, then for each
/// measured second its requests, p99 and the errors so far.
async fn progress(shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    const SECOND: Duration = Duration::from_secs(1);
    let mut next = shared.start + SECOND;
    let mut warmup_seen = 0;
    loop {
        // Realign on the start of measurement, so each line covers one measured second.
        if next > shared.measure_start && next < shared.measure_start + SECOND {
            next = shared.measure_start + SECOND;
        }
        tokio::select! {
            _ = &mut stop => return,
            () = tokio::time::sleep_until(next.into()) => {}
        }
        if next <= shared.measure_start {
            let seen = shared.warmup_requests.load(Ordering::Relaxed);
            println!(
                "warm-up {:>4.0}s/{:.0}s {:>8} req/s",
                next.saturating_duration_since(shared.start).as_secs_f64(),
                shared
                    .measure_start
                    .saturating_duration_since(shared.start)
                    .as_secs_f64(),
                seen - warmup_seen
            );
            warmup_seen = seen;
        } else if next <= shared.end {
            let elapsed = next.saturating_duration_since(shared.measure_start);
            let second = elapsed.as_secs_f64().round() as u64;
            let recorder = shared.recorder();
            let last = recorder.second(second.saturating_sub(1));
            let errors = recorder.errors();
            let error_total: u64 = errors.values().sum();
            let breakdown = if errors.is_empty() {
                String::new()
            } else {
                let parts: Vec<String> = errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                format!(" ({})", parts.join(", "))
            };
            println!(
                "{second:>6}s {:>8} req/s  p99 {:>9.2} ms  errors {error_total}{breakdown}",
                last.as_ref().map_or(0, |s| s.requests),
                last.as_ref().map_or(0.0, |s| s.p99_ms),
            );
        }
        next += SECOND;
    }
}
