//! What the bench reads from the processes it runs: the services' Prometheus metrics (scraped
//! over HTTP and summed by name and labels) and the CPU time of its child processes (from
//! `/proc`), which says which component a measurement was spending the two cores on.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// One scrape of a `/metrics` page.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scrape {
    samples: Vec<Sample>,
}

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

impl Scrape {
    /// Parses Prometheus or OpenMetrics text (exemplars and comments ignored).
    pub(crate) fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .filter_map(|line| {
                // `name{labels} value [# {exemplar} value]`
                let line = line.split(" # ").next().unwrap_or(line);
                let (series, value) = line.rsplit_once(' ')?;
                let value: f64 = value.trim().parse().ok()?;
                let (name, labels) = match series.split_once('{') {
                    Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
                    None => (series, Vec::new()),
                };
                Some(Sample {
                    name: name.trim().to_owned(),
                    labels,
                    value,
                })
            })
            .collect();
        Self { samples }
    }

    /// Sum of every series named `name` whose labels include all of `labels`.
    pub(crate) fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|s| s.value)
            .sum()
    }
}

fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let Some(end) = after.find('"') else { break };
        labels.push((
            key.trim_matches([',', ' ']).to_owned(),
            after[..end].to_owned(),
        ));
        rest = &after[end + 1..];
    }
    labels
}

/// Scrapes `http://127.0.0.1:<port>/metrics`.
pub(crate) async fn scrape(http: &reqwest::Client, port: u16) -> anyhow::Result<Scrape> {
    let text = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("scrape metrics on port {port}"))?
        .text()
        .await
        .context("read metrics")?;
    Ok(Scrape::parse(&text))
}

/// CPU seconds used so far by each direct child of this process, by program name (children
/// with the same program are added up).
#[derive(Debug, Clone, Default)]
pub(crate) struct CpuSnapshot {
    at: Option<Instant>,
    ticks: BTreeMap<u32, (String, u64)>,
}

impl CpuSnapshot {
    /// Reads `/proc/<pid>/stat` of every child of this process. Empty where `/proc` is absent.
    pub(crate) fn take() -> Self {
        let me = std::process::id();
        let mut ticks = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|s| s.parse::<u32>().ok())
                else {
                    continue;
                };
                let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                    continue;
                };
                let Some((ppid, used)) = parse_stat(&stat) else {
                    continue;
                };
                if ppid != me {
                    continue;
                }
                ticks.insert(pid, (program_name(pid, &stat), used));
            }
        }
        Self {
            at: Some(Instant::now()),
            ticks,
        }
    }

    /// Cores used by each program between `earlier` and this snapshot (CPU seconds / wall
    /// seconds), for processes present in both.
    pub(crate) fn cores_since(&self, earlier: &CpuSnapshot) -> BTreeMap<String, f64> {
        let (Some(now), Some(then)) = (self.at, earlier.at) else {
            return BTreeMap::new();
        };
        let wall = now.duration_since(then).as_secs_f64();
        if wall <= 0.0 {
            return BTreeMap::new();
        }
        let mut cores: BTreeMap<String, f64> = BTreeMap::new();
        for (pid, (name, used)) in &self.ticks {
            if let Some((_, before)) = earlier.ticks.get(pid) {
                *cores.entry(name.clone()).or_default() +=
                    used.saturating_sub(*before) as f64 / TICKS_PER_SECOND / wall;
            }
        }
        cores
    }
}

/// `(ppid, utime + stime)` from a `/proc/<pid>/stat` line.
fn parse_stat(stat: &str) -> Option<(u32, u64)> {
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // fields[0] is the state (field 3 of stat); ppid is field 4, utime 14, stime 15.
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// The program's file name from `/proc/<pid>/cmdline` (the kernel's `comm` is cut at 15
/// characters, which would merge `sidechain-feedback` and `sidechain-feed…`).
fn program_name(pid: u32, stat: &str) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .and_then(|cmdline| {
            let first = cmdline.split(|b| *b == 0).next()?.to_vec();
            let path = String::from_utf8(first).ok()?;
            // redis-server rewrites its argv into one "path host:port" string.
            let program = path.split_whitespace().next()?;
            Some(program.rsplit('/').next().unwrap_or(program).to_owned())
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| {
            stat.split_once('(')
                .and_then(|(_, rest)| rest.rsplit_once(')'))
                .map(|(comm, _)| comm.to_owned())
                .unwrap_or_default()
        })
}

/// `USER_HZ`, the unit of `/proc/<pid>/stat` times: 100 on every Linux architecture.
const TICKS_PER_SECOND: f64 = 100.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrapes_are_summed_by_name_and_labels() {
        let text = "# HELP sidechain_cache_page_requests Feed page requests\n\
            # TYPE sidechain_cache_page_requests counter\n\
            sidechain_cache_page_requests_total{feed=\"timeline\",result=\"hit_memory\"} 90\n\
            sidechain_cache_page_requests_total{feed=\"unified\",result=\"miss\"} 7\n\
            sidechain_cache_page_requests_total{feed=\"timeline\",result=\"miss\"} 3\n\
            sidechain_feedback_batch_size_sum 1234.0\n\
            sidechain_request_duration_seconds_bucket{le=\"0.1\"} 5 # {trace_id=\"ab\"} 0.05 1.0\n\
            # EOF\n";
        let scrape = Scrape::parse(text);
        assert_eq!(
            scrape.sum("sidechain_cache_page_requests_total", &[]),
            100.0
        );
        assert_eq!(
            scrape.sum("sidechain_cache_page_requests_total", &[("result", "miss")]),
            10.0
        );
        assert_eq!(
            scrape.sum(
                "sidechain_cache_page_requests_total",
                &[("feed", "timeline"), ("result", "miss")]
            ),
            3.0
        );
        assert_eq!(scrape.sum("sidechain_feedback_batch_size_sum", &[]), 1234.0);
        assert_eq!(
            scrape.sum(
                "sidechain_request_duration_seconds_bucket",
                &[("le", "0.1")]
            ),
            5.0
        );
        assert_eq!(scrape.sum("absent", &[]), 0.0);
    }

    #[test]
    fn proc_stat_lines_with_spaces_in_the_name() {
        let stat =
            "4242 (nats server) S 17 4242 17 0 -1 4194560 500 0 0 0 250 31 0 0 20 0 8 0 1000 0 0";
        assert_eq!(parse_stat(stat), Some((17, 281)));
    }
}
