//! The soak: the mixed scenario for a long time with every service's RSS sampled.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Suite, format_duration, mb};
use crate::report::Verdict;
use crate::stack::{Kind, Stack};
use crate::wrk::{ms, rate};

impl Suite {
    /// The mixed scenario for `soak`, with each service's RSS sampled every 30 s.
    pub(super) async fn soak(&self, stack: &Stack, soak: Duration) -> anyhow::Result<()> {
        self.report().section(&format!(
            "Soak: the mixed scenario for {}, RSS of every service",
            format_duration(soak)
        ));
        eprintln!("soak: {}", format_duration(soak));
        let start = Instant::now();
        let mut samples: Vec<(f64, BTreeMap<&'static str, f64>)> =
            vec![(0.0, self.rss(stack).await)];
        let out = self.out.join("soak");
        let result = {
            let load = self.load_run(stack, soak, Duration::from_secs(5), &out);
            tokio::pin!(load);
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            tick.tick().await;
            loop {
                tokio::select! {
                    result = &mut load => break result?,
                    _ = tick.tick() => {
                        let sample = self.rss(stack).await;
                        samples.push((start.elapsed().as_secs_f64(), sample));
                    }
                }
            }
        };
        samples.push((start.elapsed().as_secs_f64(), self.rss(stack).await));
        let mut report = self.report();
        let total = &result.total;
        report.row(
            "Soak, all requests",
            "100 concurrent clients without errors",
            format!(
                "{}, p50 {}, p99 {}, {} errors",
                rate(total.throughput_rps),
                ms(total.latency_ms.p50),
                ms(total.latency_ms.p99),
                total.errors
            ),
            "–",
            "–",
            Verdict::of(total.errors == 0),
        );
        for kind in Kind::ALL {
            let name = kind.name();
            let series: Vec<(f64, f64)> = samples
                .iter()
                .filter_map(|(t, rss)| rss.get(name).map(|v| (*t, *v)))
                .collect();
            let (Some(first), Some(last)) = (series.first(), series.last()) else {
                continue;
            };
            // Caches fill during the first minute; growth is judged from then on.
            let warm = series.iter().find(|(t, _)| *t >= 60.0).unwrap_or(first);
            let growth = (last.1 - warm.1) / warm.1;
            report.row(
                format!("RSS of {name} over the soak"),
                "no memory growth (≤ 10 % after the first minute)",
                format!(
                    "start {}, at {:.0} s {}, end {}",
                    mb(first.1),
                    warm.0,
                    mb(warm.1),
                    mb(last.1)
                ),
                "–",
                format!("{:+.1} % after the first minute", growth * 100.0),
                Verdict::of(growth <= 0.10),
            );
        }
        let json: Vec<Value> = samples
            .iter()
            .map(|(t, rss)| serde_json::json!({"seconds": t, "rss_bytes": rss}))
            .collect();
        report.detail("soak: rss samples", json);
        Ok(())
    }
}
