//! The RSS of every service at the start and the end of the run.

use std::collections::BTreeMap;

use super::{Suite, mb};
use crate::metrics;
use crate::report::Verdict;
use crate::stack::{Kind, Stack};

impl Suite {
    /// RSS of each running service (`sidechain_process_resident_memory_bytes`).
    pub(super) async fn rss(&self, stack: &Stack) -> BTreeMap<&'static str, f64> {
        let mut rss = BTreeMap::new();
        for service in stack.services() {
            let kind = service.kind;
            if !service.running() {
                continue;
            }
            if let Ok(scrape) = metrics::scrape(&self.http, service.metrics_port).await {
                let bytes = scrape.sum("sidechain_process_resident_memory_bytes", &[]);
                if bytes > 0.0 {
                    rss.insert(kind.name(), bytes);
                }
            }
        }
        rss
    }

    pub(super) fn rss_rows(
        &self,
        start: &BTreeMap<&'static str, f64>,
        end: &BTreeMap<&'static str, f64>,
        restarted: &[&str],
    ) {
        let mut report = self.report();
        report.section("Memory: RSS of every service at the start and the end of the run");
        for kind in Kind::ALL {
            let name = kind.name();
            let (Some(first), Some(last)) = (start.get(name), end.get(name)) else {
                continue;
            };
            let restarted = restarted.contains(&name);
            report.row(
                format!("RSS of {name}"),
                "recorded at start and end (no growth under a 10-minute soak: --soak 10m)",
                format!("{} → {}", mb(*first), mb(*last)),
                "–",
                format!(
                    "{:.2}×{}",
                    last / first,
                    if restarted {
                        " (restarted during the run for settings switches: end is the last instance)"
                    } else {
                        ""
                    }
                ),
                Verdict::Info,
            );
        }
        report.detail("rss start bytes", start);
        report.detail("rss end bytes", end);
    }
}
