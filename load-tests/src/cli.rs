//! Command line: `run` (set up a world, put load on it, write the results) and `report`
//! (render `report.html` again from a `result.json`).
//!
//! Every flag of `run` can also come from an environment variable (`SIDECHAIN_LOAD_*`), so
//! benchmark scripts can set the common ones once.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use reqwest::Url;
use serde::{Deserialize, Serialize};

/// Load generator for the Sidechain API.
#[derive(Debug, Parser)]
#[command(name = "sidechain-load", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Register users, create posts and follows, then measure a scenario.
    Run(Box<RunArgs>),
    /// Render report.html again from a result.json.
    Report(ReportArgs),
}

/// What a workload does; see `scenario.rs` for the operation mix of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Realistic: mostly feed reads, some likes, plays, follows, comments and new posts.
    Mixed,
    /// Only timelines (limit 20, offset 0): the cached-feed path.
    Feed,
    /// Only likes: the write path with authentication and rate limiting.
    Like,
    /// Only `GET /api/v1/auth/me`: the token and session path.
    Auth,
    /// Likes, plays, comments and follows only (the chaos suite's load).
    Write,
}

impl Scenario {
    /// The name used on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Mixed => "mixed",
            Scenario::Feed => "feed",
            Scenario::Like => "like",
            Scenario::Auth => "auth",
            Scenario::Write => "write",
        }
    }
}

/// `sidechain-load run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Base URL of the edge API.
    #[arg(
        long,
        env = "SIDECHAIN_LOAD_BASE_URL",
        default_value = "http://127.0.0.1:8787"
    )]
    pub base_url: Url,

    /// The workload.
    #[arg(long, env = "SIDECHAIN_LOAD_SCENARIO", value_enum, default_value_t = Scenario::Mixed)]
    pub scenario: Scenario,

    /// Requests in flight at most (one worker task each).
    #[arg(long, env = "SIDECHAIN_LOAD_CONCURRENCY", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub concurrency: u32,

    /// How long to measure, after the warm-up (e.g. `60s`, `2m`, `500ms`).
    #[arg(long, env = "SIDECHAIN_LOAD_DURATION", default_value = "60s", value_parser = sidechain_config::duration::parse)]
    pub duration: Duration,

    /// Load before measuring starts, not recorded (e.g. `5s`, `0s`).
    #[arg(long, env = "SIDECHAIN_LOAD_WARMUP", default_value = "5s", value_parser = sidechain_config::duration::parse)]
    pub warmup: Duration,

    /// Total requests per second (open loop, latency measured from the scheduled send time).
    /// Without it each worker sends its next request when the previous one is answered.
    #[arg(long, env = "SIDECHAIN_LOAD_RATE", value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// Users registered during set-up.
    #[arg(long, env = "SIDECHAIN_LOAD_USERS", default_value_t = 200,
          value_parser = clap::value_parser!(u32).range(2..=1_000_000))]
    pub users: u32,

    /// Posts each user creates during set-up.
    #[arg(long, env = "SIDECHAIN_LOAD_POSTS_PER_USER", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub posts_per_user: u32,

    /// Users each user follows during set-up (chosen by popularity, Zipf over users).
    #[arg(long, env = "SIDECHAIN_LOAD_FOLLOWS_PER_USER", default_value_t = 10)]
    pub follows_per_user: u32,

    /// Requests in flight at most during set-up.
    #[arg(long, env = "SIDECHAIN_LOAD_SETUP_CONCURRENCY", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub setup_concurrency: u32,

    /// Seed of every random choice (operations, targets, post fields); random when omitted.
    /// Usernames always get a fresh run id, so reruns with one seed do not collide.
    #[arg(long, env = "SIDECHAIN_LOAD_SEED")]
    pub seed: Option<u64>,

    /// Directory for result.json and report.html (created if missing).
    /// Default: `load-tests/results/<scenario>-<UTC time>`.
    #[arg(long, env = "SIDECHAIN_LOAD_OUT")]
    pub out: Option<PathBuf>,

    /// Append one JSON line per write (like, play, comment, follow, post) to this file,
    /// successful or not.
    #[arg(long, env = "SIDECHAIN_LOAD_RECORD_WRITES")]
    pub record_writes: Option<PathBuf>,

    /// Client-side cap on one request (then it counts as a `timeout` error).
    #[arg(long, env = "SIDECHAIN_LOAD_TIMEOUT", default_value = "15s", value_parser = sidechain_config::duration::parse)]
    pub timeout: Duration,

    /// Fail (exit code 1, after writing the results) when the measurement saw more errors than
    /// this: CI's smoke run uses 0. Unlimited when omitted.
    #[arg(long, env = "SIDECHAIN_LOAD_MAX_ERRORS")]
    pub max_errors: Option<u64>,

    /// No progress line every second (the summary is still printed).
    #[arg(long, env = "SIDECHAIN_LOAD_QUIET")]
    pub quiet: bool,
}

/// `sidechain-load report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A result.json written by `run`.
    #[arg(long = "in")]
    pub input: PathBuf,

    /// Where to write the HTML (default: report.html next to the input).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 && rate <= 10_000_000.0 => Ok(rate),
        _ => Err(format!(
            "`{text}` is not a rate: give requests per second, greater than 0"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_must_be_positive() {
        assert_eq!(parse_rate("1000"), Ok(1000.0));
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        for bad in ["0", "-3", "NaN", "inf", "lots"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_documented_command_line_parses() {
        let cli = Cli::try_parse_from([
            "sidechain-load",
            "run",
            "--base-url",
            "http://127.0.0.1:8787",
            "--scenario",
            "feed",
            "--concurrency",
            "100",
            "--duration",
            "60s",
            "--rate",
            "2000",
            "--users",
            "200",
            "--posts-per-user",
            "2",
            "--seed",
            "42",
            "--out",
            "load-tests/results/feed",
            "--record-writes",
            "writes.jsonl",
            "--warmup",
            "5s",
            "--quiet",
        ])
        .expect("parses");
        let Command::Run(args) = cli.command else {
            panic!("expected run");
        };
        assert_eq!(args.scenario, Scenario::Feed);
        assert_eq!(args.concurrency, 100);
        assert_eq!(args.duration, Duration::from_secs(60));
        assert_eq!(args.rate, Some(2000.0));
        assert_eq!(args.seed, Some(42));
        assert!(args.quiet);

        let cli = Cli::try_parse_from(["sidechain-load", "report", "--in", "x/result.json"])
            .expect("parses");
        assert!(matches!(cli.command, Command::Report(_)));
    }
}
