//! Latency and error accounting: an HDR histogram per operation (microseconds, 3 significant
//! digits), a per-second series (requests, errors, p50, p99), error counts by label (the HTTP
//! status, or `connect`/`timeout`/`transport`), and the summaries built from them.
//!
//! Latency is recorded for every answered or failed request, errors included, because that
//! is what a client waits. Seconds are counted from the start of measurement by completion
//! time; each second keeps a small histogram (2 significant digits) until it is over, then
//! only its summary. The series covers the measured duration; requests still finishing
//! after it count in the totals only.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::scenario::Operation;

/// Significant digits of the per-operation histograms.
pub const SIGFIG: u8 = 3;
/// Significant digits of the per-second histograms (only p50 and p99 are read from them).
const SERIES_SIGFIG: u8 = 2;
/// Largest latency kept apart (1 hour, in µs); longer ones count as this.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// The percentiles of the distribution curve in results and reports.
pub const CURVE_PERCENTILES: [f64; 24] = [
    0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 75.0, 80.0, 85.0, 90.0, 92.5, 95.0, 96.0, 97.0,
    98.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999, 100.0,
];

/// Latencies of one operation (or of all), in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Fastest.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest.
    pub max: f64,
}

/// One point of the distribution curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentile {
    /// 0 to 100.
    pub percentile: f64,
    /// Latency at that percentile.
    pub ms: f64,
}

/// Totals of one operation (or of all of them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpSummary {
    /// Operation name, or `total`.
    pub operation: String,
    /// Requests completed (answered or failed).
    pub requests: u64,
    /// 2xx answers.
    pub ok: u64,
    /// Everything else.
    pub errors: u64,
    /// Requests per second over the measured time.
    pub throughput_rps: f64,
    /// Latency summary.
    pub latency_ms: Latency,
    /// Errors by HTTP status or failure kind.
    pub errors_by_status: BTreeMap<String, u64>,
    /// The distribution curve.
    pub percentiles: Vec<Percentile>,
}

/// One second of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondSummary {
    /// Seconds since measurement began (0 is the first second).
    pub second: u64,
    /// Requests completed in that second.
    pub requests: u64,
    /// Of which errors.
    pub errors: u64,
    /// Median latency of those requests.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

/// Everything measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// All operations together.
    pub total: OpSummary,
    /// Each operation of the scenario.
    pub operations: Vec<OpSummary>,
    /// Second by second.
    pub series: Vec<SecondSummary>,
}

fn ms(us: u64) -> f64 {
    round3(us as f64 / 1000.0)
}

/// Rounds to three decimals (microseconds, for values in ms).
pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

fn micros(latency: Duration) -> u64 {
    u64::try_from(latency.as_micros())
        .unwrap_or(MAX_LATENCY_US)
        .clamp(1, MAX_LATENCY_US)
}

/// Latency summary of a histogram of microseconds.
pub fn latency_of(hist: &Histogram<u64>) -> Latency {
    if hist.is_empty() {
        return Latency::default();
    }
    Latency {
        min: ms(hist.min()),
        mean: round3(hist.mean() / 1000.0),
        p50: ms(hist.value_at_quantile(0.50)),
        p90: ms(hist.value_at_quantile(0.90)),
        p95: ms(hist.value_at_quantile(0.95)),
        p99: ms(hist.value_at_quantile(0.99)),
        p999: ms(hist.value_at_quantile(0.999)),
        max: ms(hist.max()),
    }
}

/// The distribution curve of a histogram of microseconds (empty if nothing was recorded).
pub fn curve_of(hist: &Histogram<u64>) -> Vec<Percentile> {
    if hist.is_empty() {
        return Vec::new();
    }
    CURVE_PERCENTILES
        .iter()
        .map(|&percentile| Percentile {
            percentile,
            ms: ms(hist.value_at_percentile(percentile)),
        })
        .collect()
}

#[derive(Debug)]
struct OpRecorder {
    hist: Histogram<u64>,
    ok: u64,
    errors: BTreeMap<String, u64>,
}

impl OpRecorder {
    fn new(template: &Histogram<u64>) -> Self {
        Self {
            hist: Histogram::new_from(template),
            ok: 0,
            errors: BTreeMap::new(),
        }
    }

    fn record(&mut self, us: u64, error: Option<&str>) {
        self.hist.saturating_record(us);
        match error {
            None => self.ok += 1,
            Some(label) => *self.errors.entry(label.to_owned()).or_default() += 1,
        }
    }

    fn summary(&self, operation: &str, elapsed: Duration) -> OpSummary {
        let requests = self.hist.len();
        let seconds = elapsed.as_secs_f64();
        OpSummary {
            operation: operation.to_owned(),
            requests,
            ok: self.ok,
            errors: requests - self.ok,
            throughput_rps: if seconds > 0.0 {
                round3(requests as f64 / seconds)
            } else {
                0.0
            },
            latency_ms: latency_of(&self.hist),
            errors_by_status: self.errors.clone(),
            percentiles: curve_of(&self.hist),
        }
    }
}

#[derive(Debug)]
enum Second {
    Open {
        requests: u64,
        errors: u64,
        hist: Histogram<u32>,
    },
    Closed(SecondSummary),
}

impl Second {
    fn summary(&self, second: u64) -> SecondSummary {
        match self {
            Second::Open {
                requests,
                errors,
                hist,
            } => {
                let at = |q| {
                    if hist.is_empty() {
                        0.0
                    } else {
                        ms(hist.value_at_quantile(q))
                    }
                };
                SecondSummary {
                    second,
                    requests: *requests,
                    errors: *errors,
                    p50_ms: at(0.5),
                    p99_ms: at(0.99),
                    max_ms: if hist.is_empty() { 0.0 } else { ms(hist.max()) },
                }
            }
            Second::Closed(summary) => summary.clone(),
        }
    }
}

/// Collects measurements; shared by the workers behind a mutex (a record takes well under a
/// microsecond).
#[derive(Debug)]
pub struct Recorder {
    ops: BTreeMap<Operation, OpRecorder>,
    total: OpRecorder,
    op_template: Histogram<u64>,
    series: Vec<Second>,
    series_template: Histogram<u32>,
    /// Seconds below this index are closed.
    closed: usize,
}

impl Recorder {
    /// A recorder listing `operations` (even those that end up with no requests).
    pub fn new(operations: &[Operation]) -> anyhow::Result<Self> {
        let op_template = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US, SIGFIG)
            .context("latency histogram")?;
        let series_template = Histogram::<u32>::new_with_bounds(1, MAX_LATENCY_US, SERIES_SIGFIG)
            .context("per-second histogram")?;
        Ok(Self {
            ops: operations
                .iter()
                .map(|op| (*op, OpRecorder::new(&op_template)))
                .collect(),
            total: OpRecorder::new(&op_template),
            op_template,
            series: Vec::new(),
            series_template,
            closed: 0,
        })
    }

    /// Records one request of `op` that took `latency`, completed during `second` (counted
    /// from the start of measurement); `error` is its label unless it succeeded.
    pub fn record(&mut self, op: Operation, latency: Duration, error: Option<&str>, second: u64) {
        let us = micros(latency);
        let template = &self.op_template;
        self.ops
            .entry(op)
            .or_insert_with(|| OpRecorder::new(template))
            .record(us, error);
        self.total.record(us, error);

        let index = usize::try_from(second).unwrap_or(usize::MAX).min(1 << 24);
        while self.series.len() <= index {
            self.series.push(Second::Open {
                requests: 0,
                errors: 0,
                hist: Histogram::new_from(&self.series_template),
            });
        }
        match &mut self.series[index] {
            Second::Open {
                requests,
                errors,
                hist,
            } => {
                *requests += 1;
                *errors += u64::from(error.is_some());
                // Requests that take hours would be clamped, not lost.
                hist.saturating_record(us);
            }
            // A straggler for a second already summarised: count it, percentiles stay.
            Second::Closed(summary) => {
                summary.requests += 1;
                summary.errors += u64::from(error.is_some());
            }
        }
        // Completion times only move forward (give or take a lock wait), so seconds two
        // behind the newest are over: keep their summary, free their histogram.
        while self.closed + 2 <= index {
            let summary = self.series[self.closed].summary(self.closed as u64);
            self.series[self.closed] = Second::Closed(summary);
            self.closed += 1;
        }
    }

    /// Summary of one second so far (for the progress line).
    pub fn second(&self, second: u64) -> Option<SecondSummary> {
        let index = usize::try_from(second).ok()?;
        self.series.get(index).map(|s| s.summary(second))
    }

    /// Errors so far, by label.
    pub fn errors(&self) -> &BTreeMap<String, u64> {
        &self.total.errors
    }

    /// The summaries, with throughput over `elapsed`. The series covers the seconds of
    /// `window` (the measured duration), empty seconds included; requests finishing after
    /// it count in the totals only, so a last, partial second does not look like a drop.
    pub fn summary(&self, elapsed: Duration, window: Duration) -> Summary {
        let seconds = window.as_secs() + u64::from(window.subsec_nanos() > 0);
        Summary {
            total: self.total.summary("total", elapsed),
            operations: self
                .ops
                .iter()
                .map(|(op, rec)| rec.summary(op.name(), elapsed))
                .collect(),
            series: (0..seconds)
                .map(|second| {
                    self.second(second).unwrap_or(SecondSummary {
                        second,
                        requests: 0,
                        errors: 0,
                        p50_ms: 0.0,
                        p99_ms: 0.0,
                        max_ms: 0.0,
                    })
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder() -> Recorder {
        Recorder::new(&[Operation::Timeline, Operation::Like, Operation::Play]).expect("recorder")
    }

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= b.abs() * tolerance
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut rec = recorder();
        // 1 ms, 2 ms, … 1000 ms.
        for i in 1..=1000 {
            rec.record(Operation::Timeline, Duration::from_millis(i), None, 0);
        }
        let summary = rec.summary(Duration::from_secs(10), Duration::from_secs(10));
        let timeline = &summary.operations[0];
        assert_eq!(timeline.operation, "timeline");
        assert_eq!(timeline.requests, 1000);
        assert_eq!(timeline.ok, 1000);
        assert_eq!(timeline.throughput_rps, 100.0);
        let latency = &timeline.latency_ms;
        // 3 significant digits: within 0.1 %.
        assert!(close(latency.p50, 500.0, 0.001), "{}", latency.p50);
        assert!(close(latency.p95, 950.0, 0.001), "{}", latency.p95);
        assert!(close(latency.p99, 990.0, 0.001), "{}", latency.p99);
        assert!(close(latency.max, 1000.0, 0.001), "{}", latency.max);
        assert!(close(latency.min, 1.0, 0.001), "{}", latency.min);
        assert!(close(latency.mean, 500.5, 0.001), "{}", latency.mean);
        let curve = &timeline.percentiles;
        assert_eq!(curve.len(), CURVE_PERCENTILES.len());
        assert!(curve.windows(2).all(|w| w[0].ms <= w[1].ms), "monotonic");
        assert_eq!(curve.last().map(|p| p.percentile), Some(100.0));
    }

    #[test]
    fn errors_are_counted_by_label_per_operation_and_in_total() {
        let mut rec = recorder();
        let ms5 = Duration::from_millis(5);
        rec.record(Operation::Like, ms5, None, 0);
        rec.record(Operation::Like, ms5, Some("503"), 0);
        rec.record(Operation::Like, ms5, Some("503"), 1);
        rec.record(Operation::Play, ms5, Some("timeout"), 1);
        rec.record(Operation::Timeline, ms5, None, 1);
        let summary = rec.summary(Duration::from_secs(2), Duration::from_secs(2));
        assert_eq!(summary.total.requests, 5);
        assert_eq!(summary.total.ok, 2);
        assert_eq!(summary.total.errors, 3);
        assert_eq!(summary.total.errors_by_status.get("503"), Some(&2));
        assert_eq!(summary.total.errors_by_status.get("timeout"), Some(&1));
        let like = summary
            .operations
            .iter()
            .find(|o| o.operation == "like")
            .expect("like");
        assert_eq!((like.requests, like.ok, like.errors), (3, 1, 2));
        assert_eq!(rec.errors().values().sum::<u64>(), 3);
    }

    #[test]
    fn operations_of_the_scenario_are_listed_even_when_idle() {
        let rec = recorder();
        let summary = rec.summary(Duration::from_secs(1), Duration::from_secs(1));
        let names: Vec<&str> = summary
            .operations
            .iter()
            .map(|o| o.operation.as_str())
            .collect();
        assert_eq!(names, ["timeline", "like", "play"]);
        assert!(summary.operations.iter().all(|o| o.requests == 0));
        assert_eq!(summary.total.latency_ms, Latency::default());
        assert!(summary.total.percentiles.is_empty());
    }

    #[test]
    fn seconds_are_bucketed_and_summarised_when_over() {
        let mut rec = recorder();
        for _ in 0..99 {
            rec.record(Operation::Timeline, Duration::from_millis(10), None, 0);
        }
        rec.record(
            Operation::Timeline,
            Duration::from_millis(200),
            Some("500"),
            0,
        );
        rec.record(Operation::Timeline, Duration::from_millis(3), None, 2);
        let second0 = rec.second(0).expect("second 0");
        assert_eq!((second0.requests, second0.errors), (100, 1));
        assert!(close(second0.p50_ms, 10.0, 0.01), "{}", second0.p50_ms);
        assert!(close(second0.p99_ms, 10.0, 0.01), "{}", second0.p99_ms);
        assert!(close(second0.max_ms, 200.0, 0.01), "{}", second0.max_ms);
        // Second 0 is closed now (two behind second 2); a straggler still counts.
        rec.record(Operation::Timeline, Duration::from_millis(10), None, 0);
        assert_eq!(rec.second(0).map(|s| s.requests), Some(101));
        // A second without requests is present, empty.
        let second1 = rec.second(1).expect("second 1");
        assert_eq!((second1.requests, second1.p99_ms), (0, 0.0));
        assert_eq!(rec.second(9), None);
        // The series spans the measured window: empty seconds included, later ones left out.
        let series = rec
            .summary(Duration::from_secs(5), Duration::from_millis(4500))
            .series;
        assert_eq!(series.len(), 5);
        assert_eq!(series[2].requests, 1);
        assert_eq!((series[4].second, series[4].requests), (4, 0));
        let series = rec
            .summary(Duration::from_secs(2), Duration::from_secs(2))
            .series;
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].second, 0);
    }

    #[test]
    fn latency_is_clamped_not_lost() {
        let mut rec = recorder();
        rec.record(Operation::Play, Duration::ZERO, None, 0);
        rec.record(Operation::Play, Duration::from_secs(100_000), None, 0);
        let summary = rec.summary(Duration::from_secs(1), Duration::from_secs(1));
        assert_eq!(summary.total.requests, 2);
        assert!(summary.total.latency_ms.max >= 3_600_000.0 * 0.999);
    }
}
