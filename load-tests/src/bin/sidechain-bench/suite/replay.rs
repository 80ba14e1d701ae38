//! A fresh cache service replaying the stream into an empty Redis, on a fresh stack.

use super::Suite;
use crate::backlog;
use crate::report::Verdict;
use crate::stack::{Kind, Stack};

impl Suite {
    /// A fresh cache service replays the stream into an empty Redis.
    pub(super) async fn replay(&mut self) -> anyhow::Result<()> {
        let n = self.settings.events;
        self.report().section(&format!(
            "Replay: a fresh cache service rebuilds the read models from {n} events"
        ));
        eprintln!("replay: storing {n} events (registrations, posts, follows, likes)");
        let mut stack =
            Stack::start(&self.bins, &self.out.join("logs/replay"), &self.http, &[]).await?;
        let published = backlog::publish(&stack.js, backlog::history(n, 42)).await?;
        let last = stack.last_sequence().await?;
        eprintln!("replay: starting the cache service on an empty Redis");
        let elapsed = self
            .time_until_metric(
                &mut stack,
                Kind::Cache,
                "sidechain_cache_applied_sequence",
                last as f64,
            )
            .await?;
        stack.stop().await;
        let throughput = published.events as f64 / elapsed;
        let mut report = self.report();
        report.row(
            format!(
                "Replay into an empty Redis ({} events, from process start)",
                published.events
            ),
            "– (Redis can be rebuilt from the stream)",
            format!(
                "{throughput:.0} events/s ({} in {elapsed:.2} s)",
                published.events
            ),
            format!(
                "storing them: JetStream publish, 256 in flight, {:.0} events/s",
                published.rate
            ),
            format!("{:.2}×", throughput / published.rate),
            Verdict::Info,
        );
        report.detail(
            "replay",
            serde_json::json!({"events": published.events, "seconds": elapsed,
                "events_per_second": throughput, "last_sequence": last, "published": published}),
        );
        Ok(())
    }
}
