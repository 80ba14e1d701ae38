//! `sidechain-load run`: set-up, warm-up and measurement, then the summary table and the
//! result files.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use crate::cli::{RunArgs, Scenario};
use crate::client;
use crate::load::{self, LoadPlan};
use crate::report::{self, Parameters, RunResult, summary_table};
use crate::setup::{self, SetupPlan};
use crate::writes;

fn default_out_dir(scenario: Scenario, at: DateTime<Utc>) -> PathBuf {
    PathBuf::from("load-tests/results").join(format!(
        "{}-{}",
        scenario.name(),
        at.format("%Y%m%d-%H%M%S")
    ))
}

/// Runs `args` end to end. Fails (non-zero exit) when the API cannot be reached during
/// set-up, the results cannot be written, or the run saw more errors than `--max-errors`.
pub async fn execute(args: RunArgs) -> anyhow::Result<()> {
    anyhow::ensure!(!args.duration.is_zero(), "--duration must be longer than 0");
    let seed = args.seed.unwrap_or_else(rand::random);
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| default_out_dir(args.scenario, Utc::now()));
    // Fail before the set-up, not after the run, if results cannot be written.
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let outcome = run_into(args, seed, &out_dir).await;
    if outcome.is_err() {
        // Leave no empty result directory behind (a non-empty one is kept).
        let _ = std::fs::remove_dir(&out_dir);
    }
    outcome
}

async fn run_into(args: RunArgs, seed: u64, out_dir: &Path) -> anyhow::Result<()> {
    let (write_log, writer) = match &args.record_writes {
        Some(path) => {
            let (log, writer) = writes::open(path).await?;
            (Some(log), Some(writer))
        }
        None => (None, None),
    };

    let connections = args.concurrency.max(args.setup_concurrency) as usize;
    let client = client::connect(&args.base_url, args.timeout, connections)?;
    let base_url = client.base().to_owned();
    if !args.quiet {
        println!(
            "sidechain-load: scenario {} against {} (seed {seed}); results in {}",
            args.scenario.name(),
            client.base(),
            out_dir.display()
        );
    }

    let (world, setup_report) = setup::prepare(
        client.clone(),
        &SetupPlan {
            users: args.users as usize,
            posts_per_user: args.posts_per_user as usize,
            follows_per_user: args.follows_per_user as usize,
            concurrency: args.setup_concurrency as usize,
            seed,
            quiet: args.quiet,
        },
    )
    .await?;

    let measurement = load::measure(
        client,
        world,
        &LoadPlan {
            scenario: args.scenario,
            concurrency: args.concurrency as usize,
            duration: args.duration,
            warmup: args.warmup,
            rate: args.rate,
            seed,
            quiet: args.quiet,
        },
        write_log,
    )
    .await?;
    let writes_recorded = match writer {
        Some(writer) => Some(writer.finish().await?),
        None => None,
    };

    let max_errors = args.max_errors;
    let summary = measurement.summary;
    let result = RunResult {
        tool: concat!("sidechain-load ", env!("CARGO_PKG_VERSION")).to_owned(),
        scenario: args.scenario,
        parameters: Parameters {
            base_url,
            concurrency: args.concurrency,
            duration_seconds: args.duration.as_secs_f64(),
            warmup_seconds: args.warmup.as_secs_f64(),
            rate: args.rate,
            mode: if args.rate.is_some() {
                "open-loop"
            } else {
                "closed-loop"
            }
            .to_owned(),
            users: args.users,
            posts_per_user: args.posts_per_user,
            follows_per_user: args.follows_per_user,
            seed,
            timeout_seconds: args.timeout.as_secs_f64(),
        },
        setup: setup_report,
        started_at: measurement.started_at,
        ended_at: measurement.ended_at,
        measured_seconds: measurement.elapsed.as_secs_f64(),
        warmup_requests: measurement.warmup_requests,
        unsent: measurement.unsent,
        errors_by_status: summary.total.errors_by_status.clone(),
        total: summary.total,
        operations: summary.operations,
        series: summary.series,
    };
    print!("{}", summary_table(&result));
    let (json, html) = report::write_all(out_dir, &result)?;
    println!("\nresult: {}\nreport: {}", json.display(), html.display());
    if let (Some(count), Some(path)) = (writes_recorded, &args.record_writes) {
        println!("writes: {count} lines appended to {}", path.display());
    }
    if let Some(limit) = max_errors {
        anyhow::ensure!(
            result.total.errors <= limit,
            "{} errors in the measurement ({:?}), more than --max-errors {limit}",
            result.total.errors,
            result.errors_by_status
        );
    }
    Ok(())
}
