//! The mixed scenario of `sidechain-load` with the page cache hit ratio, and the cached feed
//! at 1,000 connections.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;
use sidechain_load::report::{RESULT_FILE, RunResult};
use sidechain_load::stats::OpSummary;

use super::{PAGE, Suite, World, format_duration};
use crate::metrics::{self, Scrape};
use crate::report::Verdict;
use crate::stack::Stack;
use crate::wrk::{Shape, Target, ms, rate};

impl Suite {
    pub(super) async fn mixed(&mut self, stack: &mut Stack, world: &World) -> anyhow::Result<()> {
        self.report()
            .section("Mixed: sidechain-load --scenario mixed, 100 concurrent (closed loop)");
        let s = self.settings.clone();
        eprintln!(
            "mixed: {} users set up, {} warm-up, {} measured",
            s.mixed_users,
            format_duration(s.mixed_warmup),
            format_duration(s.mixed_duration)
        );
        let before = metrics::scrape(&self.http, stack.cache.metrics_port).await?;
        let result = self
            .load_run(
                stack,
                s.mixed_duration,
                s.mixed_warmup,
                &self.out.join("mixed"),
            )
            .await?;
        let after = metrics::scrape(&self.http, stack.cache.metrics_port).await?;
        self.mixed_rows(&result, &before, &after);

        eprintln!("connections: the cached feed at wrk -t2 -c1000");
        let target = Target::get(format!(
            "{}/api/v1/feed/timeline?limit={PAGE}&offset=0",
            stack.base_url()
        ))
        .bearer(&world.viewer.token);
        let shape = Shape {
            threads: 2,
            connections: 1000,
            duration: self.settings.duration,
        };
        let run = self.wrk.run(&target, shape).await?;
        let baseline = self.cached_feed.clone();
        {
            let mut report = self.report();
            report.row(
                "1,000 connections on the cached feed (wrk -t2 -c1000)",
                "100 concurrent clients without errors (aim 1,000)",
                format!(
                    "{}, p50 {}, p99 {}, errors: {}",
                    rate(run.rps),
                    ms(run.p50_ms),
                    ms(run.p99_ms),
                    run.errors.describe()
                ),
                baseline
                    .as_ref()
                    .map(|b| format!("c{} {}", s.connections, b.summary()))
                    .unwrap_or_else(|| "–".to_owned()),
                baseline
                    .as_ref()
                    .map(|b| format!("{:.2}× throughput", run.rps / b.rps))
                    .unwrap_or_else(|| "–".to_owned()),
                Verdict::of(run.errors.total() == 0),
            );
            report.cpu.push((
                "feed at 1,000 connections".to_owned(),
                run.cpu_cores.clone(),
            ));
            report.detail("wrk: feed at 1,000 connections", &run);
        }

        if let Some(soak) = s.soak {
            self.soak(stack, soak).await?;
        }
        Ok(())
    }

    /// Runs `sidechain-load run --scenario mixed` against the stack; answers its result.json,
    /// read with the load tool's own types.
    pub(super) async fn load_run(
        &self,
        stack: &Stack,
        duration: Duration,
        warmup: Duration,
        out: &Path,
    ) -> anyhow::Result<RunResult> {
        std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
        let log_path = out.join("sidechain-load.log");
        let log = std::fs::File::create(&log_path).context("sidechain-load log")?;
        let args = [
            "run".to_owned(),
            "--base-url".to_owned(),
            stack.base_url(),
            "--scenario".to_owned(),
            "mixed".to_owned(),
            "--concurrency".to_owned(),
            "100".to_owned(),
            "--duration".to_owned(),
            format!("{}ms", duration.as_millis()),
            "--warmup".to_owned(),
            format!("{}ms", warmup.as_millis()),
            "--users".to_owned(),
            self.settings.mixed_users.to_string(),
            "--seed".to_owned(),
            "42".to_owned(),
            "--out".to_owned(),
            out.display().to_string(),
            "--quiet".to_owned(),
        ];
        self.report().detail(
            &format!("command: {}", out.display()),
            format!("sidechain-load {}", args.join(" ")),
        );
        let status = tokio::process::Command::new(&self.bins.load)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().context("log")?)
            .stderr(log)
            .kill_on_drop(true)
            .status()
            .await
            .context("run sidechain-load")?;
        if !status.success() {
            bail!(
                "sidechain-load failed ({status}):\n{}",
                crate::stack::tail(&std::fs::read_to_string(&log_path).unwrap_or_default(), 30)
            );
        }
        RunResult::load(&out.join(RESULT_FILE))
    }

    pub(super) fn mixed_rows(&self, result: &RunResult, before: &Scrape, after: &Scrape) {
        let mut report = self.report();
        let op_text = |op: &OpSummary| {
            let mut text = format!(
                "{}, p50 {}, p99 {}",
                rate(op.throughput_rps),
                ms(op.latency_ms.p50),
                ms(op.latency_ms.p99),
            );
            if op.errors > 0 {
                text.push_str(&format!(
                    ", {} errors {}",
                    op.errors,
                    serde_json::json!(op.errors_by_status)
                ));
            } else {
                text.push_str(", no errors");
            }
            text
        };
        let total = &result.total;
        report.row(
            "Mixed, all requests (100 concurrent)",
            "100 concurrent clients without errors",
            op_text(total),
            "–",
            "–",
            Verdict::of(total.errors == 0 && total.requests > 0),
        );
        for op in &result.operations {
            let name = op.operation.as_str();
            let p99 = op.latency_ms.p99;
            let (target, verdict) = match name {
                "timeline" | "unified" | "trending" | "user_posts" => {
                    ("feed p99 < 100 ms (aim < 10 ms)", Verdict::of(p99 < 100.0))
                }
                "auth_me" => ("p99 < 50 ms (aim < 5 ms)", Verdict::of(p99 < 50.0)),
                _ => ("–", Verdict::Info),
            };
            report.row(
                format!("Mixed: {name}"),
                target,
                op_text(op),
                "–",
                "–",
                verdict,
            );
        }
        let name = "sidechain_cache_page_requests_total";
        let delta = |result: &str| {
            after.sum(name, &[("result", result)]) - before.sum(name, &[("result", result)])
        };
        let (memory, redis, miss, coalesced) = (
            delta("hit_memory"),
            delta("hit_redis"),
            delta("miss"),
            delta("coalesced"),
        );
        let all = memory + redis + miss + coalesced;
        if all > 0.0 {
            let ratio = 1.0 - miss / all;
            report.row(
                "Page cache hit ratio in the mixed run (1 − miss/total)",
                "> 70 % (aim > 90 %)",
                format!("{:.1} %", ratio * 100.0),
                format!(
                    "{all:.0} page requests: memory {memory:.0}, Redis {redis:.0}, coalesced {coalesced:.0}, miss {miss:.0}"
                ),
                if ratio > 0.9 {
                    "within the aim".to_owned()
                } else {
                    "–".to_owned()
                },
                Verdict::of(ratio > 0.70),
            );
        } else {
            report.note("the cache service counted no page requests during the mixed run");
        }
        let ops: Vec<Value> = result
            .operations
            .iter()
            .map(|op| {
                serde_json::json!({
                    "operation": op.operation, "requests": op.requests, "errors": op.errors,
                    "throughput_rps": op.throughput_rps, "latency_ms": op.latency_ms,
                    "errors_by_status": op.errors_by_status,
                })
            })
            .collect();
        let summary = serde_json::json!({
            "parameters": result.parameters,
            "setup": result.setup,
            "measured_seconds": result.measured_seconds,
            "total": result.total,
            "errors_by_status": result.errors_by_status,
            "operations": ops,
            "page_requests": {"hit_memory": memory, "hit_redis": redis, "coalesced": coalesced, "miss": miss},
        });
        report.detail("mixed", summary);
    }
}
