//! `GET /api/v1/auth/me` with and without the session caches.

use super::{Suite, World};
use crate::report::Verdict;
use crate::stack::{Kind, Stack};
use crate::wrk::Target;

impl Suite {
    pub(super) async fn auth(&mut self, stack: &mut Stack, world: &World) -> anyhow::Result<()> {
        self.report()
            .section("Auth: GET /api/v1/auth/me (token check + session)");
        let target =
            Target::get(format!("{}/api/v1/auth/me", stack.base_url())).bearer(&world.viewer.token);
        eprintln!("auth: session caches on");
        let cached = self
            .measure(
                "auth /me, session caches on",
                &target,
                self.shape(),
                async || Ok(()),
            )
            .await?;
        eprintln!("auth: session caches off (edge and cache restarted with SESSION_CACHE_TTL=0)");
        let uncached = self
            .with_settings(
                stack,
                &[Kind::Cache, Kind::Edge],
                &[("SESSION_CACHE_TTL", "0")],
                async |_| {
                    self.measure(
                        "auth /me, session caches off (SESSION_CACHE_TTL=0)",
                        &target,
                        self.shape(),
                        async || Ok(()),
                    )
                    .await
                },
            )
            .await?;

        let hello = self.floors.hello.clone();
        let mut report = self.report();
        report.row(
            "Auth /me with the session caches (c100)",
            "p99 < 50 ms (aim < 5 ms)",
            cached.summary(),
            hello
                .as_ref()
                .map(|h| format!("bare HTTP floor {}", h.summary()))
                .unwrap_or_else(|| "–".to_owned()),
            hello
                .as_ref()
                .map(|h| {
                    format!(
                        "{:.0} % of floor req/s, p99 {:.2}×",
                        cached.rps / h.rps * 100.0,
                        cached.p99_ms / h.p99_ms
                    )
                })
                .unwrap_or_else(|| "–".to_owned()),
            Verdict::of(cached.p99_ms < 50.0 && cached.errors.total() == 0),
        );
        report.row(
            "Auth /me without session caches (SESSION_CACHE_TTL=0)",
            "– (what the session caches save)",
            uncached.summary(),
            format!("cached {}", cached.summary()),
            uncached.versus(&cached),
            Verdict::Info,
        );
        Ok(())
    }
}
