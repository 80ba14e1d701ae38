//! `sidechain-bench`: the benchmark comparison suite behind `just bench` (docs/benchmarks.md).
//!
//! It starts its own `nats-server`, `redis-server`, Gorse test double and the three service
//! release binaries on free ports, measures the physical floors (DESIGN.md "Performance
//! floors") and the services' paths side by side in one run, and reports each figure as a
//! ratio to its baseline: the cached feed and the like path against their floors, the page
//! cache, session cache and rate limiter on and off, likes with Gorse healthy, stalled and
//! down, feedback and replay throughput, a realistic mixed run with the cache hit ratio, a
//! 1,000-connection test and the memory of every service (with `--soak`, over a long run).
//!
//! Modules: `suite` (the comparisons, in order), `stack` (the processes), `floors` (floor
//! measurements and programs), `wrk` (load and its figures), `api` (set-up calls), `backlog`
//! (events written straight to the stream), `metrics` (scrapes and CPU by process),
//! `report` (the table, bench.json, bench.md).
//!
//! Every process it started is killed when it finishes, fails, panics or is interrupted
//! (Ctrl-C or SIGTERM drop the run, and every process handle kills its process on drop); the
//! results so far are written either way.

// The table and the progress of a benchmark run on stdout are what this tool is for.
#![allow(clippy::print_stdout)]

mod api;
mod backlog;
mod floors;
mod metrics;
mod report;
mod stack;
mod suite;
mod wrk;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use futures::FutureExt as _;

use crate::report::Report;

/// Benchmark comparison suite: the Sidechain services beside their physical floors.
#[derive(Debug, Parser)]
#[command(name = "sidechain-bench", version, about)]
struct Cli {
    /// Length of each measured wrk run (default 10s; 3s with --quick).
    #[arg(long, value_parser = sidechain_config::duration::parse)]
    duration: Option<Duration>,

    /// Measured runs per configuration; medians are reported (default 3; 1 with --quick).
    #[arg(long)]
    repetitions: Option<u32>,

    /// Unrecorded wrk run before each configuration (default 2s; 1s with --quick).
    #[arg(long, value_parser = sidechain_config::duration::parse)]
    warmup: Option<Duration>,

    /// wrk connections for the throughput comparisons (wrk -t2 -c<N>).
    #[arg(long, default_value_t = 100)]
    connections: u32,

    /// Events in the feedback-throughput and replay backlogs (default 20000; 5000 with --quick).
    #[arg(long)]
    events: Option<u32>,

    /// Sequential round trips for the Redis and NATS floors (default 20000; 5000 with --quick).
    #[arg(long)]
    round_trips: Option<u32>,

    /// Measured length of the mixed scenario run (default 60s; 15s with --quick).
    #[arg(long, value_parser = sidechain_config::duration::parse)]
    mixed_duration: Option<Duration>,

    /// Also run the mixed scenario this long (e.g. 10m) and report each service's RSS growth.
    #[arg(long, value_parser = sidechain_config::duration::parse)]
    soak: Option<Duration>,

    /// A smoke run of about two minutes (short runs, one repetition, smaller backlogs).
    #[arg(long)]
    quick: bool,

    /// Only these groups (comma-separated); default all.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<suite::Group>,

    /// Results directory (default load-tests/results/bench-<UTC time>).
    #[arg(long)]
    out: Option<PathBuf>,

    /// Where the release binaries are (default: this executable's directory).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

impl Cli {
    fn settings(&self) -> suite::Settings {
        let quick = self.quick;
        let pick = |given: Option<Duration>, full: u64, short: u64| {
            given.unwrap_or(Duration::from_secs(if quick { short } else { full }))
        };
        suite::Settings {
            duration: pick(self.duration, 10, 3),
            repetitions: self.repetitions.unwrap_or(if quick { 1 } else { 3 }).max(1),
            warmup: pick(self.warmup, 2, 1),
            connections: self.connections.max(1),
            events: self
                .events
                .unwrap_or(if quick { 5_000 } else { 20_000 })
                .max(100),
            round_trips: self
                .round_trips
                .unwrap_or(if quick { 5_000 } else { 20_000 })
                .max(100),
            mixed_duration: pick(self.mixed_duration, 60, 15),
            mixed_warmup: Duration::from_secs(if quick { 2 } else { 5 }),
            mixed_users: if quick { 60 } else { 200 },
            soak: self.soak,
            groups: if self.only.is_empty() {
                suite::Group::value_variants().to_vec()
            } else {
                self.only.clone()
            },
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let settings = cli.settings();
    let out = cli.out.clone().unwrap_or_else(|| {
        PathBuf::from("load-tests/results").join(format!(
            "bench-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        ))
    });
    let report = Arc::new(Mutex::new(Report::default()));
    // The run stays on this task (its futures hold `AsyncFn` closures, which are not `Send`);
    // a signal drops it, and with it every process handle, which kills the processes.
    let run = std::panic::AssertUnwindSafe(suite::run(
        settings,
        cli.bin_dir.clone(),
        out.clone(),
        report.clone(),
    ))
    .catch_unwind();
    let interrupted = async {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut term) => {
                    term.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "interrupted (SIGINT)",
            () = terminate => "terminated (SIGTERM)",
        }
    };
    let failure = tokio::select! {
        finished = run => match finished {
            Ok(Ok(())) => None,
            Ok(Err(err)) => Some(format!("{err:#}")),
            Err(_) => Some("the run panicked (see above)".to_owned()),
        },
        reason = interrupted => Some(reason.to_owned()),
    };

    let mut report = report
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    report.finished_at = Some(chrono::Utc::now().to_rfc3339());
    report.incomplete = failure.clone();
    println!("\n{}", report.text_table());
    match report.write(&out) {
        Ok(()) => println!("wrote {0}/bench.json and {0}/bench.md", out.display()),
        Err(err) => eprintln!("sidechain-bench: cannot write the results: {err:#}"),
    }
    match failure {
        None => ExitCode::SUCCESS,
        Some(reason) => {
            eprintln!("sidechain-bench: {reason}");
            ExitCode::FAILURE
        }
    }
}
