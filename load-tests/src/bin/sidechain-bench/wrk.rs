//! Driving `wrk` (closed loop, `-t2 -c100 --latency` like DESIGN.md's floors) and reading its
//! figures exactly: each run gets a generated Lua script that sets the method, headers and
//! body and, in wrk's `done` hook, prints one machine-readable line with the request count,
//! duration, bytes, errors by kind and latency percentiles in microseconds.
//!
//! While wrk runs, the CPU time of every child process of the bench is sampled over the
//! middle of the run (from 0.5 s after the start to 0.5 s before the end), so each result
//! says where the cores went.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Serialize;

use crate::metrics::CpuSnapshot;

/// What every connection sends.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// Full URL.
    pub(crate) url: String,
    /// `GET` or `POST`.
    pub(crate) method: &'static str,
    /// Extra headers.
    pub(crate) headers: Vec<(String, String)>,
    /// Request body (sent with `Content-Type: application/json`).
    pub(crate) body: Option<String>,
}

impl Target {
    /// `GET url`.
    pub(crate) fn get(url: String) -> Self {
        Self {
            url,
            method: "GET",
            headers: Vec::new(),
            body: None,
        }
    }

    /// `POST url` with a JSON body.
    pub(crate) fn post_json(url: String, body: String) -> Self {
        Self {
            url,
            method: "POST",
            headers: Vec::new(),
            body: Some(body),
        }
    }

    /// Adds `Authorization: Bearer <token>`.
    pub(crate) fn bearer(mut self, token: &str) -> Self {
        self.headers
            .push(("Authorization".to_owned(), format!("Bearer {token}")));
        self
    }
}

/// Threads, connections and duration of one run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) threads: u32,
    pub(crate) connections: u32,
    pub(crate) duration: Duration,
}

/// Errors wrk counted.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Errors {
    pub(crate) connect: u64,
    pub(crate) read: u64,
    pub(crate) write: u64,
    pub(crate) timeout: u64,
    /// Answers that were not 2xx or 3xx.
    pub(crate) status: u64,
}

impl Errors {
    /// All of them.
    pub(crate) fn total(&self) -> u64 {
        self.connect + self.read + self.write + self.timeout + self.status
    }

    /// `connect 0, read 3, …` for the non-zero kinds, or `none`.
    pub(crate) fn describe(&self) -> String {
        let kinds: Vec<String> = [
            ("connect", self.connect),
            ("read", self.read),
            ("write", self.write),
            ("timeout", self.timeout),
            ("non-2xx", self.status),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
        if kinds.is_empty() {
            "none".to_owned()
        } else {
            kinds.join(", ")
        }
    }
}

/// One wrk run.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Run {
    pub(crate) requests: u64,
    pub(crate) seconds: f64,
    pub(crate) rps: f64,
    pub(crate) bytes_per_response: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p90_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) mean_ms: f64,
    pub(crate) errors: Errors,
    /// Cores used by each child program during the middle of the run.
    pub(crate) cpu_cores: BTreeMap<String, f64>,
}

/// Repeated runs of one configuration and their medians.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Series {
    pub(crate) label: String,
    pub(crate) command: String,
    pub(crate) runs: Vec<Run>,
    /// Median throughput of the runs.
    pub(crate) rps: f64,
    /// Median p50.
    pub(crate) p50_ms: f64,
    /// Median p99.
    pub(crate) p99_ms: f64,
    /// Errors over all runs.
    pub(crate) errors: Errors,
    /// Median response size.
    pub(crate) bytes_per_response: f64,
    /// CPU by program in the run with the median throughput.
    pub(crate) cpu_cores: BTreeMap<String, f64>,
}

impl Series {
    fn from_runs(label: &str, command: String, runs: Vec<Run>) -> Self {
        let pick = |f: fn(&Run) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
        let mut errors = Errors::default();
        for run in &runs {
            errors.connect += run.errors.connect;
            errors.read += run.errors.read;
            errors.write += run.errors.write;
            errors.timeout += run.errors.timeout;
            errors.status += run.errors.status;
        }
        let rps = pick(|r| r.rps);
        let cpu_cores = runs
            .iter()
            .min_by(|a, b| (a.rps - rps).abs().total_cmp(&(b.rps - rps).abs()))
            .map(|r| r.cpu_cores.clone())
            .unwrap_or_default();
        Self {
            label: label.to_owned(),
            command,
            rps,
            p50_ms: pick(|r| r.p50_ms),
            p99_ms: pick(|r| r.p99_ms),
            bytes_per_response: pick(|r| r.bytes_per_response),
            errors,
            cpu_cores,
            runs,
        }
    }

    /// `31.2k req/s, p50 1.9 ms, p99 6.1 ms` (+ errors when any).
    /// This series against `baseline`: "1.18× throughput, 0.85× p99".
    pub(crate) fn versus(&self, baseline: &Series) -> String {
        format!(
            "{:.2}× throughput, {:.2}× p99",
            self.rps / baseline.rps,
            self.p99_ms / baseline.p99_ms
        )
    }

    pub(crate) fn summary(&self) -> String {
        let errors = if self.errors.total() > 0 {
            format!(", errors: {}", self.errors.describe())
        } else {
            String::new()
        };
        format!(
            "{}, p50 {}, p99 {}{errors}",
            rate(self.rps),
            ms(self.p50_ms),
            ms(self.p99_ms)
        )
    }
}

/// The median (mean of the middle two for an even count; 0 for none).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// `31.2k req/s` / `850 req/s`.
pub(crate) fn rate(rps: f64) -> String {
    if rps >= 10_000.0 {
        format!("{:.1}k req/s", rps / 1000.0)
    } else {
        format!("{rps:.0} req/s")
    }
}

/// `0.43 ms`, `6.1 ms`, `120 ms`.
pub(crate) fn ms(value: f64) -> String {
    if value < 1.0 {
        format!("{value:.2} ms")
    } else if value < 100.0 {
        format!("{value:.1} ms")
    } else {
        format!("{value:.0} ms")
    }
}

/// Runs wrk; scripts go to a directory of the run's results.
#[derive(Debug)]
pub(crate) struct Wrk {
    scripts: PathBuf,
    counter: AtomicU32,
}

impl Wrk {
    /// Checks that wrk is installed.
    pub(crate) fn new(scripts: PathBuf) -> anyhow::Result<Self> {
        let found = std::process::Command::new("wrk")
            .arg("--version")
            .output()
            .is_ok();
        if !found {
            bail!("wrk is not installed: `apt-get install wrk` (the `just bench` recipe does it)");
        }
        std::fs::create_dir_all(&scripts)
            .with_context(|| format!("create {}", scripts.display()))?;
        Ok(Self {
            scripts,
            counter: AtomicU32::new(0),
        })
    }

    /// The command line of a run (for the record).
    pub(crate) fn command(target: &Target, shape: Shape) -> String {
        let mut command = format!(
            "wrk -t{} -c{} -d{}s --latency",
            shape.threads,
            shape.connections,
            shape.duration.as_secs().max(1)
        );
        if target.method != "GET" {
            command.push_str(&format!(" -s <{} script>", target.method));
        }
        for (name, value) in &target.headers {
            let value = if name == "Authorization" {
                "Bearer <token>"
            } else {
                value
            };
            command.push_str(&format!(" -H '{name}: {value}'"));
        }
        command.push(' ');
        command.push_str(&target.url);
        command
    }

    /// A warm-up run of `warmup` (not recorded), then `repetitions` measured runs, each
    /// after `before_each` (which lets consumers catch up with the previous run's writes).
    pub(crate) async fn series(
        &self,
        label: &str,
        target: &Target,
        shape: Shape,
        warmup: Duration,
        repetitions: u32,
        before_each: impl AsyncFn() -> anyhow::Result<()>,
    ) -> anyhow::Result<Series> {
        if !warmup.is_zero() {
            before_each().await?;
            self.run(
                target,
                Shape {
                    duration: warmup,
                    ..shape
                },
            )
            .await
            .with_context(|| format!("{label}: warm-up"))?;
        }
        let mut runs = Vec::new();
        for repetition in 1..=repetitions.max(1) {
            before_each().await?;
            let run = self
                .run(target, shape)
                .await
                .with_context(|| format!("{label}: run {repetition}"))?;
            eprintln!(
                "  {label} [{repetition}/{repetitions}]: {}, p50 {}, p99 {}, errors {}",
                rate(run.rps),
                ms(run.p50_ms),
                ms(run.p99_ms),
                run.errors.describe()
            );
            runs.push(run);
        }
        Ok(Series::from_runs(label, Self::command(target, shape), runs))
    }

    /// One run.
    pub(crate) async fn run(&self, target: &Target, shape: Shape) -> anyhow::Result<Run> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let script = self.scripts.join(format!("wrk-{n:03}.lua"));
        std::fs::write(&script, lua_script(target))
            .with_context(|| format!("write {}", script.display()))?;
        // wrk takes whole seconds.
        let seconds = shape.duration.as_secs().max(1);
        let child = tokio::process::Command::new("wrk")
            .arg(format!("-t{}", shape.threads))
            .arg(format!("-c{}", shape.connections))
            .arg(format!("-d{seconds}s"))
            .arg("--latency")
            .arg("-s")
            .arg(&script)
            .arg(&target.url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("start wrk")?;
        let mut cpu_cores = BTreeMap::new();
        if seconds >= 2 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let before = CpuSnapshot::take();
            tokio::time::sleep(Duration::from_secs(seconds) - Duration::from_secs(1)).await;
            cpu_cores = CpuSnapshot::take().cores_since(&before);
        }
        let output = child.wait_with_output().await.context("wait for wrk")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!(
                "wrk failed ({}): {}{}",
                output.status,
                stdout,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let mut run = parse_result(&stdout)
            .with_context(|| format!("no result line in wrk's output:\n{stdout}"))?;
        run.cpu_cores = cpu_cores;
        Ok(run)
    }
}

/// The Lua script of a run.
fn lua_script(target: &Target) -> String {
    let mut lua = String::from("-- generated by sidechain-bench\n");
    lua.push_str(&format!("wrk.method = \"{}\"\n", target.method));
    for (name, value) in &target.headers {
        lua.push_str(&format!("wrk.headers[\"{name}\"] = [==[{value}]==]\n"));
    }
    if let Some(body) = &target.body {
        lua.push_str("wrk.headers[\"Content-Type\"] = \"application/json\"\n");
        lua.push_str(&format!("wrk.body = [==[{body}]==]\n"));
    }
    lua.push_str(
        r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "SIDECHAIN_WRK requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d p50=%.1f p90=%.1f p99=%.1f max=%.1f mean=%.1f\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"#,
    );
    lua
}

/// Reads the `SIDECHAIN_WRK` line.
fn parse_result(stdout: &str) -> Option<Run> {
    let line = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("SIDECHAIN_WRK "))?;
    let fields: BTreeMap<&str, f64> = line
        .split_whitespace()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k, v.parse().ok()?))
        })
        .collect();
    let get = |k: &str| fields.get(k).copied();
    let requests = get("requests")? as u64;
    let seconds = get("duration_us")? / 1e6;
    let count = |k: &str| get(k).unwrap_or(0.0) as u64;
    Some(Run {
        requests,
        seconds,
        rps: if seconds > 0.0 {
            requests as f64 / seconds
        } else {
            0.0
        },
        bytes_per_response: if requests > 0 {
            get("bytes")? / requests as f64
        } else {
            0.0
        },
        p50_ms: get("p50")? / 1000.0,
        p90_ms: get("p90")? / 1000.0,
        p99_ms: get("p99")? / 1000.0,
        max_ms: get("max")? / 1000.0,
        mean_ms: get("mean")? / 1000.0,
        errors: Errors {
            connect: count("connect"),
            read: count("read"),
            write: count("write"),
            timeout: count("timeout"),
            status: count("status"),
        },
        cpu_cores: BTreeMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_line_is_read() {
        let stdout = "Running 10s test @ http://127.0.0.1:1/hello\n  2 threads and 100 connections\n\
            SIDECHAIN_WRK requests=1000 duration_us=2000000 bytes=700000 connect=0 read=2 write=0 status=3 timeout=1 p50=812.0 p90=1200.5 p99=4500.0 max=9000.0 mean=900.0\n";
        let run = parse_result(stdout).expect("parsed");
        assert_eq!(run.requests, 1000);
        assert_eq!(run.rps, 500.0);
        assert_eq!(run.bytes_per_response, 700.0);
        assert_eq!(run.p50_ms, 0.812);
        assert_eq!(run.p99_ms, 4.5);
        assert_eq!(run.errors.total(), 6);
        assert_eq!(run.errors.describe(), "read 2, timeout 1, non-2xx 3");
        assert!(parse_result("no summary here").is_none());
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn scripts_carry_method_headers_and_body() {
        let target = Target::post_json(
            "http://127.0.0.1:1/api/v1/social/like".to_owned(),
            r#"{"activity_id":"abc"}"#.to_owned(),
        )
        .bearer("a.b.c");
        let lua = lua_script(&target);
        assert!(lua.contains("wrk.method = \"POST\""));
        assert!(lua.contains("wrk.headers[\"Authorization\"] = [==[Bearer a.b.c]==]"));
        assert!(lua.contains(r#"wrk.body = [==[{"activity_id":"abc"}]==]"#));
        assert!(
            Wrk::command(
                &target,
                Shape {
                    threads: 2,
                    connections: 100,
                    duration: Duration::from_secs(10)
                }
            )
            .starts_with(
                "wrk -t2 -c100 -d10s --latency -s <POST script> -H 'Authorization: Bearer <token>'"
            )
        );
    }
}
