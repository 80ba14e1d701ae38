//! The physical floors: Redis and NATS round trips and the hello, feed and like floor
//! programs (`crate::floors`), measured first so the request paths can be put beside them.

use sidechain_test_support::free_port;

use super::Suite;
use crate::floors;
use crate::report::Verdict;
use crate::stack::Stack;
use crate::wrk::Target;

impl Suite {
    pub(super) async fn floors(&mut self, stack: &Stack) -> anyhow::Result<()> {
        self.report()
            .section("Floors: minimal programs on the same stack, measured in this run");
        let n = self.settings.round_trips;
        let admin = sidechain_test_support::Identity::Admin;
        let redis_login = (
            stack.redis.port(),
            admin.name(),
            stack.redis.password(admin),
        );
        eprintln!("floors: Redis PING, NATS request/reply ({n} sequential each)");
        if let Some(ping) = floors::redis_benchmark(&redis_login, n).await? {
            self.report().row(
                "Redis PING round trip (redis-benchmark -t ping -c 1)",
                "59 µs avg, ≈ 105 µs p99 (seed floor)",
                format!(
                    "avg {:.0} µs, p50 {:.0} µs, p99 {:.0} µs",
                    ping.avg_us, ping.p50_us, ping.p99_us
                ),
                "–",
                format!("{:.2}× seed avg", ping.avg_us / 59.0),
                Verdict::Info,
            );
            self.floors.redis_ping = Some(ping);
        } else {
            self.report()
                .note("redis-benchmark not found (apt-get install redis-tools); only the redis-rs PING floor was measured");
        }
        let ping = floors::redis_client_ping(&stack.redis.url(), n).await?;
        self.report().row(
            "Redis PING through redis-rs (the services' client), sequential",
            "≈ 65 µs (criterion rate_limit/redis_ping_floor, busy machine)",
            format!(
                "avg {:.0} µs, p50 {:.0} µs, p99 {:.0} µs",
                ping.avg_us, ping.p50_us, ping.p99_us
            ),
            "–",
            "–",
            Verdict::Info,
        );
        self.report().detail("floor: redis-rs ping", &ping);
        self.floors.redis_client_ping = Some(ping);
        let rr = floors::nats_request_reply(&stack.nats, n).await?;
        self.report().row(
            "NATS request/reply round trip (sequential)",
            "175 µs p50 (seed floor)",
            format!(
                "p50 {:.0} µs, avg {:.0} µs, p99 {:.0} µs",
                rr.p50_us, rr.avg_us, rr.p99_us
            ),
            "–",
            format!("{:.2}× seed p50", rr.p50_us / 175.0),
            Verdict::Info,
        );
        self.report().detail("floor: nats request/reply", &rr);

        let logs = self.out.join("logs");
        let redis = stack.redis.url();
        let mut measured = Vec::new();
        for (program, label, seed, seed_rps) in [
            (
                floors::Program::Hello,
                "floor: bare HTTP GET, 600 B JSON",
                "126.6k req/s, p99 4.5 ms (seed floor)",
                126_600.0,
            ),
            (
                floors::Program::Feed,
                "floor: HTTP → NATS request → Redis GET 600 B → reply",
                "27.9k req/s, p99 7.3 ms (seed floor)",
                27_900.0,
            ),
            (
                floors::Program::Like,
                "floor: HTTP POST → JetStream publish + ack → 202",
                "49.9k req/s, p99 5.1 ms (seed floor)",
                49_900.0,
            ),
        ] {
            eprintln!("{label}");
            let process = floors::start(
                &self.bins,
                &self.http,
                program,
                free_port(),
                &stack.nats,
                &redis,
                &logs,
            )
            .await?;
            let target = match program {
                floors::Program::Like => Target::post_json(
                    process.url.clone(),
                    format!("{{\"activity_id\":\"{}\"}}", uuid::Uuid::now_v7()),
                ),
                floors::Program::Hello | floors::Program::Feed => Target::get(process.url.clone()),
            };
            let series = self
                .measure(label, &target, self.shape(), async || Ok(()))
                .await?;
            drop(process);
            self.report().row(
                label.trim_start_matches("floor: "),
                seed,
                series.summary(),
                "–",
                format!("{:.2}× seed req/s", series.rps / seed_rps),
                Verdict::Info,
            );
            measured.push((program, series));
        }
        for (program, series) in measured {
            match program {
                floors::Program::Hello => self.floors.hello = Some(series),
                floors::Program::Feed => self.floors.feed = Some(series),
                floors::Program::Like => self.floors.like = Some(series),
            }
        }
        Ok(())
    }
}
