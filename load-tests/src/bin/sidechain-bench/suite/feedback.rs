//! The feedback service draining a backlog of likes into the Gorse double, on a fresh stack.

use super::Suite;
use crate::backlog;
use crate::metrics;
use crate::report::Verdict;
use crate::stack::{Kind, Stack};

impl Suite {
    /// The feedback service drains a backlog of likes into the Gorse double.
    pub(super) async fn feedback(&mut self) -> anyhow::Result<()> {
        let n = self.settings.events;
        self.report().section(&format!(
            "Feedback: a fresh feedback service drains {n} likes into the Gorse double"
        ));
        eprintln!("feedback: storing {n} likes in a fresh stream");
        let mut stack =
            Stack::start(&self.bins, &self.out.join("logs/feedback"), &self.http, &[]).await?;
        let published = backlog::publish(&stack.js, backlog::likes(n)).await?;
        eprintln!(
            "feedback: stored in {:.2} s; starting the feedback service",
            published.seconds
        );
        let elapsed = self
            .time_until_metric(
                &mut stack,
                Kind::Feedback,
                "sidechain_feedback_items_sent_total",
                f64::from(n),
            )
            .await?;
        let port = stack.feedback.metrics_port;
        let scrape = metrics::scrape(&self.http, port).await?;
        let record = stack.gorse_record().await?;
        stack.stop().await;

        let received = record["feedback_received"].as_u64().unwrap_or(0);
        let batches = record["feedback_batches"].as_u64().unwrap_or(0);
        let fill = scrape.sum("sidechain_feedback_batch_size_sum", &[])
            / scrape
                .sum("sidechain_feedback_batch_size_count", &[])
                .max(1.0);
        let throughput = f64::from(n) / elapsed;
        let mut report = self.report();
        report.row(
            format!("Feedback throughput ({n} likes waiting, from process start)"),
            "– (feedback never blocks a request)",
            format!("{throughput:.0} events/s ({n} in {elapsed:.2} s)"),
            format!(
                "storing them: JetStream publish, 256 in flight, {:.0} events/s",
                published.rate
            ),
            format!("{:.2}×", throughput / published.rate),
            Verdict::Info,
        );
        report.row(
            "Feedback batch fill (messages per batch)",
            "GORSE_BATCH_SIZE = 100",
            format!("{fill:.1} per batch ({batches} feedback PUTs)"),
            "100",
            format!("{:.0} %", fill),
            Verdict::Info,
        );
        report.row(
            "Feedback rows the Gorse double received",
            format!("{n} (each like once)"),
            received.to_string(),
            n.to_string(),
            format!("{:.3}×", received as f64 / f64::from(n)),
            Verdict::of(received >= u64::from(n)),
        );
        report.detail(
            "feedback",
            serde_json::json!({"events": n, "seconds": elapsed, "events_per_second": throughput,
                "received": received, "batches": batches, "fill": fill, "published": published}),
        );
        Ok(())
    }
}
