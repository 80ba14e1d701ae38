//! The summary table printed at the end of a run.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::RunResult;
use crate::stats::OpSummary;

/// `503: 4, timeout: 1`, or `-` when there were none.
pub(super) fn error_list(errors: &BTreeMap<String, u64>) -> String {
    if errors.is_empty() {
        return "-".to_owned();
    }
    errors
        .iter()
        .map(|(label, count)| format!("{label}: {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn row(out: &mut String, op: &OpSummary) {
    let l = &op.latency_ms;
    let _ = writeln!(
        out,
        "{:<11} {:>9} {:>10.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2}  {}",
        op.operation,
        op.requests,
        op.throughput_rps,
        l.p50,
        l.p95,
        l.p99,
        l.max,
        error_list(&op.errors_by_status)
    );
}

/// The run in a few lines: what ran, then per operation and in total the requests,
/// throughput, p50/p95/p99/max in ms and the errors by status.
pub fn summary_table(result: &RunResult) -> String {
    let mut out = String::new();
    let p = &result.parameters;
    let pacing = match p.rate {
        Some(rate) => format!("open loop at {rate} req/s"),
        None => "closed loop".to_owned(),
    };
    let _ = writeln!(
        out,
        "\nscenario {} against {}: {} workers, {pacing}, {:.1} s measured after {:.1} s warm-up",
        result.scenario.name(),
        p.base_url,
        p.concurrency,
        result.measured_seconds,
        p.warmup_seconds,
    );
    let _ = writeln!(
        out,
        "set-up: {} users, {} posts, {} follows in {:.1} s ({} rate-limited, {} retried)\n",
        result.setup.users,
        result.setup.posts,
        result.setup.follows,
        result.setup.seconds,
        result.setup.rate_limited,
        result.setup.retried
    );
    let _ = writeln!(
        out,
        "{:<11} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9}  errors",
        "operation", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    for op in &result.operations {
        row(&mut out, op);
    }
    let _ = writeln!(out, "{}", "-".repeat(80));
    row(&mut out, &result.total);
    if let Some(unsent) = result.unsent.filter(|n| *n > 0) {
        let _ = writeln!(
            out,
            "\n{unsent} requests were due but not sent before the end: the server or \
             --concurrency could not keep up with --rate."
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;

    #[test]
    fn the_table_lists_every_operation_and_the_total() {
        let table = summary_table(&sample());
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines.iter().any(|l| l.starts_with("timeline")));
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("like") && l.ends_with("503: 10"))
        );
        let total = lines
            .iter()
            .find(|l| l.starts_with("total"))
            .expect("total row");
        assert!(total.contains("500"), "{total}");
        assert!(table.contains("scenario mixed"));
    }

    #[test]
    fn no_errors_shows_a_dash() {
        assert_eq!(error_list(&BTreeMap::new()), "-");
    }
}
