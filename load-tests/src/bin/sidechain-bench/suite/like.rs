//! Likes: against the like floor, with the Redis, in-process and no rate limiter, and with
//! Gorse healthy, stalled and down.

use sidechain_events::subjects;

use super::{CONSUMERS, Suite, World};
use crate::report::Verdict;
use crate::stack::{Kind, Stack};
use crate::wrk::{Shape, Target, ms, rate};

impl Suite {
    pub(super) async fn like(&mut self, stack: &mut Stack, world: &World) -> anyhow::Result<()> {
        self.report().section(
            "Like: POST /api/v1/social/like (auth, post lookup, rate limit, JetStream publish + ack)",
        );
        let target = Target::post_json(
            format!("{}/api/v1/social/like", stack.base_url()),
            format!("{{\"activity_id\":\"{}\"}}", world.posts[0]),
        )
        .bearer(&world.viewer.token);
        let sequential = Shape {
            threads: 1,
            connections: 1,
            duration: self.settings.duration,
        };
        let cache_only = [subjects::CACHE_CONSUMER];
        // Sequential reads isolate the limiter: no events, so no consumer work in between.
        let me =
            Target::get(format!("{}/api/v1/auth/me", stack.base_url())).bearer(&world.viewer.token);

        eprintln!("like: Redis limiter, Gorse healthy");
        let healthy = self
            .measure(
                "like, Redis limiter, Gorse healthy",
                &target,
                self.shape(),
                async || self.settle(stack, &CONSUMERS).await,
            )
            .await?;
        let seq_redis = self
            .measure(
                "like, sequential (c1), Redis limiter",
                &target,
                sequential,
                async || self.settle(stack, &CONSUMERS).await,
            )
            .await?;
        let seq_me_redis = self
            .measure(
                "auth /me, sequential (c1), Redis limiter",
                &me,
                sequential,
                async || Ok(()),
            )
            .await?;

        eprintln!("like: Gorse stalled (the double answers after 10 s)");
        stack.gorse_control("latency_ms=10000").await?;
        let stalled = self
            .measure(
                "like, Gorse stalled (10 s)",
                &target,
                self.shape(),
                async || self.settle(stack, &cache_only).await,
            )
            .await;
        stack.gorse_control("latency_ms=0").await?;
        let stalled = stalled?;

        eprintln!("like: Gorse down (the double killed)");
        stack.kill_double();
        let down = self
            .measure("like, Gorse down", &target, self.shape(), async || {
                self.settle(stack, &cache_only).await
            })
            .await;
        stack.start_double().await?;
        let down = down?;
        eprintln!("like: waiting for the feedback service to catch up with Gorse back");
        self.settle(stack, &CONSUMERS).await?;

        eprintln!("like: in-process limiter (edge restarted with RATE_LIMIT_BACKEND=local)");
        let local = self
            .with_settings(
                stack,
                &[Kind::Edge],
                &[("RATE_LIMIT_BACKEND", "local")],
                async |stack| {
                    self.measure(
                        "like, in-process limiter (RATE_LIMIT_BACKEND=local)",
                        &target,
                        self.shape(),
                        async || self.settle(stack, &CONSUMERS).await,
                    )
                    .await
                },
            )
            .await?;
        eprintln!("like: no limiter (edge restarted with RATE_LIMIT_BACKEND=off)");
        let (off, seq_off, seq_me_off) = self
            .with_settings(
                stack,
                &[Kind::Edge],
                &[("RATE_LIMIT_BACKEND", "off")],
                async |stack| {
                    let off = self
                        .measure(
                            "like, no limiter (RATE_LIMIT_BACKEND=off)",
                            &target,
                            self.shape(),
                            async || self.settle(stack, &CONSUMERS).await,
                        )
                        .await?;
                    let seq_off = self
                        .measure(
                            "like, sequential (c1), no limiter",
                            &target,
                            sequential,
                            async || self.settle(stack, &CONSUMERS).await,
                        )
                        .await?;
                    let seq_me_off = self
                        .measure(
                            "auth /me, sequential (c1), no limiter",
                            &me,
                            sequential,
                            async || Ok(()),
                        )
                        .await?;
                    Ok((off, seq_off, seq_me_off))
                },
            )
            .await?;

        let floor = self.floors.like.clone();
        let pings = (
            self.floors.redis_client_ping.clone(),
            self.floors.redis_ping.clone(),
        );
        let mut report = self.report();
        match &floor {
            Some(floor) => {
                let ratio = healthy.rps / floor.rps;
                report.row(
                    "Like throughput, Redis limiter (c100)",
                    "≥ 50 % of the like floor",
                    rate(healthy.rps),
                    format!("floor {}", rate(floor.rps)),
                    format!("{:.0} %", ratio * 100.0),
                    Verdict::of(ratio >= 0.50),
                );
                let ratio = healthy.p99_ms / floor.p99_ms;
                report.row(
                    "Like p99, Redis limiter (c100)",
                    "≤ 2× the like floor's p99",
                    format!("p99 {} (p50 {})", ms(healthy.p99_ms), ms(healthy.p50_ms)),
                    format!("floor p99 {} (p50 {})", ms(floor.p99_ms), ms(floor.p50_ms)),
                    format!("{ratio:.2}×"),
                    Verdict::of(ratio <= 2.0 && healthy.errors.total() == 0),
                );
            }
            None => report.row(
                "Like, Redis limiter (c100)",
                "≥ 50 % of the floor, p99 ≤ 2× (floors not measured in this run)",
                healthy.summary(),
                "–",
                "–",
                Verdict::Info,
            ),
        }
        report.row(
            "Like, in-process limiter (RATE_LIMIT_BACKEND=local)",
            "–",
            local.summary(),
            format!("Redis limiter {}", healthy.summary()),
            local.versus(&healthy),
            Verdict::Info,
        );
        report.row(
            "Like, no limiter (RATE_LIMIT_BACKEND=off)",
            "–",
            off.summary(),
            format!("Redis limiter {}", healthy.summary()),
            format!(
                "Redis limiter keeps {:.0} % of the throughput",
                healthy.rps / off.rps * 100.0
            ),
            Verdict::Info,
        );
        let (client_ping, tool_ping) = pings;
        let ping_text = [
            client_ping
                .as_ref()
                .map(|p| format!("redis-rs PING p50 {:.0} µs", p.p50_us)),
            tool_ping
                .as_ref()
                .map(|p| format!("redis-benchmark p50 {:.0} µs", p.p50_us)),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("; ");
        for (label, with, without, judged) in [
            (
                "Rate limiter added latency (sequential /me, p50 Redis limiter − p50 off)",
                &seq_me_redis,
                &seq_me_off,
                true,
            ),
            (
                "Rate limiter added latency (sequential like, p50 Redis limiter − p50 off)",
                &seq_redis,
                &seq_off,
                false,
            ),
        ] {
            let added_ms = with.p50_ms - without.p50_ms;
            report.row(
                label,
                "< 1 ms (aim ≈ one Redis round trip)",
                format!(
                    "{:+.0} µs (p50 {} vs {})",
                    added_ms * 1000.0,
                    ms(with.p50_ms),
                    ms(without.p50_ms)
                ),
                if ping_text.is_empty() {
                    "–".to_owned()
                } else {
                    ping_text.clone()
                },
                client_ping
                    .as_ref()
                    .map(|p| format!("{:.1} round trips", added_ms * 1000.0 / p.p50_us))
                    .unwrap_or_else(|| "–".to_owned()),
                if judged {
                    Verdict::of(added_ms < 1.0)
                } else {
                    Verdict::Info
                },
            );
        }

        report.section(
            "Gorse: likes while Gorse is healthy, stalled, down (feedback never blocks a request)",
        );
        for (label, series, what) in [
            (
                "Like p99, Gorse stalled (double answers after 10 s)",
                &stalled,
                "stalled",
            ),
            ("Like p99, Gorse down (double killed)", &down, "down"),
        ] {
            let ratio = series.p99_ms / healthy.p99_ms;
            report.row(
                label,
                "unchanged (within ±25 % of healthy)",
                series.summary(),
                format!("healthy {}", healthy.summary()),
                series.versus(&healthy),
                Verdict::of(ratio <= 1.25 && series.errors.total() == 0),
            );
            report.detail(&format!("gorse {what}: like p99 ratio"), ratio);
        }
        Ok(())
    }
}
