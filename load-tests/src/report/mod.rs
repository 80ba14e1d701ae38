//! Results: `result.json` (machine-readable: scenario, parameters, set-up, times, totals and
//! per-operation stats, errors by status, the per-second series), the terminal summary
//! table, and `report.html` (self-contained, with inline SVG charts).

mod charts;
mod html;
mod text;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cli::{ReportArgs, Scenario};
use crate::setup::SetupReport;
use crate::stats::{OpSummary, SecondSummary};

pub use text::summary_table;

/// Name of the machine-readable result in the output directory.
pub const RESULT_FILE: &str = "result.json";
/// Name of the HTML report in the output directory.
pub const REPORT_FILE: &str = "report.html";

/// How the run was configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parameters {
    /// The API.
    pub base_url: String,
    /// Workers (requests in flight at most).
    pub concurrency: u32,
    /// Measured time asked for.
    pub duration_seconds: f64,
    /// Warm-up before it.
    pub warmup_seconds: f64,
    /// Open-loop rate, if any.
    pub rate: Option<f64>,
    /// `closed-loop` or `open-loop`.
    pub mode: String,
    /// Users registered.
    pub users: u32,
    /// Posts per user.
    pub posts_per_user: u32,
    /// Follows per user.
    pub follows_per_user: u32,
    /// Seed of the random choices.
    pub seed: u64,
    /// Client-side request timeout.
    pub timeout_seconds: f64,
}

/// Everything one run measured; the content of `result.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// `sidechain-load <version>`.
    pub tool: String,
    /// The workload.
    pub scenario: Scenario,
    /// Its configuration.
    pub parameters: Parameters,
    /// What set-up did.
    pub setup: SetupReport,
    /// When measurement began (after the warm-up).
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: DateTime<Utc>,
    /// Measured time; throughput is over this.
    pub measured_seconds: f64,
    /// Requests of the warm-up (not in the stats).
    pub warmup_requests: u64,
    /// Open loop: requests due that no worker was free to send before the end.
    pub unsent: Option<u64>,
    /// All operations together.
    pub total: OpSummary,
    /// Each operation of the scenario.
    pub operations: Vec<OpSummary>,
    /// Errors by HTTP status or failure kind, all operations.
    pub errors_by_status: BTreeMap<String, u64>,
    /// Second by second.
    pub series: Vec<SecondSummary>,
}

impl RunResult {
    /// Reads a result file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a sidechain-load result", path.display()))
    }

    /// The result as pretty JSON.
    pub fn to_json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }
}

/// Writes `result.json` and `report.html` into `dir` (created if missing); answers their
/// paths.
pub fn write_all(dir: &Path, result: &RunResult) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json_path = dir.join(RESULT_FILE);
    std::fs::write(&json_path, result.to_json()? + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    let html_path = dir.join(REPORT_FILE);
    write_html(&html_path, result)?;
    Ok((json_path, html_path))
}

fn write_html(path: &Path, result: &RunResult) -> anyhow::Result<()> {
    let page = html::render(result)?;
    std::fs::write(path, page).with_context(|| format!("writing {}", path.display()))
}

/// `sidechain-load report`: renders the HTML again from a result file; answers its path.
pub fn rerender(args: &ReportArgs) -> anyhow::Result<PathBuf> {
    let result = RunResult::load(&args.input)?;
    let out = args.out.clone().unwrap_or_else(|| {
        args.input
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(REPORT_FILE)
    });
    write_html(&out, &result)?;
    Ok(out)
}

#[cfg(test)]
pub mod tests {
    use std::time::Duration;

    use super::*;
    use crate::scenario::Operation;
    use crate::stats::Recorder;

    /// The totals of a run without requests.
    pub fn empty_summary() -> OpSummary {
        Recorder::new(&[])
            .expect("rec")
            .summary(Duration::from_secs(1), Duration::from_secs(1))
            .total
    }

    /// A result as a short run would produce it.
    pub fn sample() -> RunResult {
        let mut recorder = Recorder::new(&[Operation::Timeline, Operation::Like]).expect("rec");
        for second in 0..5_u64 {
            for i in 1..=50_u64 {
                recorder.record(
                    Operation::Timeline,
                    Duration::from_micros(800 + i * 40 + second * 100),
                    None,
                    second,
                );
                let error = (i % 25 == 0).then_some("503");
                recorder.record(
                    Operation::Like,
                    Duration::from_millis(2 + i / 10),
                    error,
                    second,
                );
            }
        }
        let summary = recorder.summary(Duration::from_secs(5), Duration::from_secs(5));
        let started_at = DateTime::parse_from_rfc3339("2026-03-01T10:00:00.250Z")
            .expect("time")
            .with_timezone(&Utc);
        RunResult {
            tool: "sidechain-load 0.1.0".into(),
            scenario: Scenario::Mixed,
            parameters: Parameters {
                base_url: "http://127.0.0.1:8787".into(),
                concurrency: 20,
                duration_seconds: 5.0,
                warmup_seconds: 1.0,
                rate: None,
                mode: "closed-loop".into(),
                users: 50,
                posts_per_user: 2,
                follows_per_user: 10,
                seed: 42,
                timeout_seconds: 15.0,
            },
            setup: SetupReport {
                run_id: "0badc0de".into(),
                users: 50,
                posts: 100,
                follows: 480,
                rate_limited: 0,
                retried: 0,
                seconds: 3.5,
            },
            started_at,
            ended_at: started_at + chrono::TimeDelta::seconds(5),
            measured_seconds: 5.0,
            warmup_requests: 90,
            unsent: None,
            errors_by_status: summary.total.errors_by_status.clone(),
            total: summary.total,
            operations: summary.operations,
            series: summary.series,
        }
    }

    #[test]
    fn results_round_trip_through_json() {
        let result = sample();
        let json = result.to_json().expect("json");
        let back: RunResult = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, result);
        let value: serde_json::Value = serde_json::from_str(&json).expect("value");
        assert_eq!(value["scenario"], "mixed");
        assert_eq!(value["total"]["requests"], 500);
        assert_eq!(value["errors_by_status"]["503"], 10);
        assert_eq!(value["series"].as_array().map(Vec::len), Some(5));
        assert_eq!(value["started_at"], "2026-03-01T10:00:00.250Z");
    }

    #[test]
    fn files_are_written_and_the_report_renders_again() {
        let dir =
            std::env::temp_dir().join(format!("sidechain-load-test-{}", uuid::Uuid::new_v4()));
        let (json, html) = write_all(&dir, &sample()).expect("written");
        assert_eq!(RunResult::load(&json).expect("loads"), sample());
        std::fs::remove_file(&html).expect("remove");
        let again = rerender(&ReportArgs {
            input: json,
            out: None,
        })
        .expect("rendered");
        assert_eq!(again, html);
        let page = std::fs::read_to_string(&html).expect("read");
        assert!(page.contains("<svg"));
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
