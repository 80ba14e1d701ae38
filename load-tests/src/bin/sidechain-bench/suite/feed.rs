//! The cached timeline against its floor, without the page cache, and the delay until a
//! new post shows in a follower's cached timeline.

use std::time::Duration;

use super::{PAGE, Suite, World};
use crate::api::Api;
use crate::report::Verdict;
use crate::stack::{Kind, Stack};
use crate::wrk::{self, Target, ms, rate};

impl Suite {
    pub(super) async fn feed(
        &mut self,
        stack: &mut Stack,
        world: &World,
        api: &Api,
    ) -> anyhow::Result<()> {
        self.report().section(
            "Feed: GET /api/v1/feed/timeline?limit=20 (a viewer following 4 posters, a full 20-post page)",
        );
        let target = Target::get(format!(
            "{}/api/v1/feed/timeline?limit={PAGE}&offset=0",
            stack.base_url()
        ))
        .bearer(&world.viewer.token);
        eprintln!("feed: page cache on");
        let cached = self
            .measure(
                "feed, page cache on",
                &target,
                self.shape(),
                async || Ok(()),
            )
            .await?;

        eprintln!(
            "feed: invalidation delay (a followed poster posts; until the viewer's cached timeline shows it)"
        );
        let mut delays = Vec::new();
        for i in 0..5u32 {
            // The viewer's page is cached (just read under load, or read again here).
            api.timeline(&world.viewer, PAGE).await?;
            let poster = &world.posters[i as usize % world.posters.len()];
            let post = api.create_post(poster, 1000 + i).await?;
            let delay = api
                .wait_for_post(
                    &world.viewer,
                    PAGE,
                    &post,
                    Duration::from_millis(2),
                    Duration::from_secs(10),
                )
                .await?;
            delays.push(delay.as_secs_f64() * 1000.0);
        }

        eprintln!("feed: page cache off (cache service restarted with CACHE_PAGES=false)");
        let uncached = self
            .with_settings(
                stack,
                &[Kind::Cache],
                &[("CACHE_PAGES", "false")],
                async |_| {
                    self.measure(
                        "feed, page cache off (CACHE_PAGES=false)",
                        &target,
                        self.shape(),
                        async || Ok(()),
                    )
                    .await
                },
            )
            .await?;

        let floor = self.floors.feed.clone();
        let mut report = self.report();
        let size = format!(" ({:.0} B/response)", cached.bytes_per_response);
        match &floor {
            Some(floor) => {
                let ratio = cached.rps / floor.rps;
                report.row(
                    "Cached feed throughput (c100)",
                    "≥ 70 % of the cached-feed floor",
                    format!("{}{size}", rate(cached.rps)),
                    format!(
                        "floor {} ({:.0} B/response)",
                        rate(floor.rps),
                        floor.bytes_per_response
                    ),
                    format!("{:.0} %", ratio * 100.0),
                    Verdict::of(ratio >= 0.70),
                );
                let ratio = cached.p99_ms / floor.p99_ms;
                report.row(
                    "Cached feed p99 vs floor (c100)",
                    "≤ 1.5× the floor's p99",
                    format!("p99 {} (p50 {})", ms(cached.p99_ms), ms(cached.p50_ms)),
                    format!("floor p99 {} (p50 {})", ms(floor.p99_ms), ms(floor.p50_ms)),
                    format!("{ratio:.2}×"),
                    Verdict::of(ratio <= 1.5),
                );
            }
            None => report.row(
                "Cached feed (c100)",
                "≥ 70 % of the floor, p99 ≤ 1.5× (floors not measured in this run)",
                format!("{}{size}", cached.summary()),
                "–",
                "–",
                Verdict::Info,
            ),
        }
        report.row(
            "Cached feed p99 (100 concurrent)",
            "< 100 ms (aim < 10 ms)",
            format!("p99 {}", ms(cached.p99_ms)),
            "–",
            if cached.p99_ms < 10.0 {
                "within the aim".to_owned()
            } else {
                "–".to_owned()
            },
            Verdict::of(cached.p99_ms < 100.0 && cached.errors.total() == 0),
        );
        report.row(
            "Feed without the page cache (CACHE_PAGES=false)",
            "– (what the page cache saves)",
            uncached.summary(),
            format!("cached {}", cached.summary()),
            uncached.versus(&cached),
            Verdict::Info,
        );
        let max_delay = delays.iter().copied().fold(0.0, f64::max);
        report.row(
            "New post visible in a follower's cached timeline",
            "< 1 s (the system test's bound)",
            format!(
                "median {}, max {} (5 posts, timeline polled every 2 ms)",
                ms(wrk::median(&delays)),
                ms(max_delay)
            ),
            "–",
            "–",
            Verdict::of(max_delay < 1000.0),
        );
        report.detail("feed: invalidation delays ms", &delays);
        drop(report);
        self.cached_feed = Some(cached);
        Ok(())
    }
}
