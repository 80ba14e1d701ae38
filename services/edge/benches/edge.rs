//! Micro-benchmarks of the edge's per-request checks, each beside its physical floor measured
//! in the same run:
//!
//! - token verification (HS256 signature + claims) — pure CPU;
//! - the Redis rate-limit check (one EVALSHA of the GCRA script) vs a Redis `PING` round trip
//!   on the same connection (the floor: one round trip), and vs the in-process fallback.
//!
//! `cargo bench -p sidechain-edge --bench edge`; figures in docs/benchmarks.md.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use prometheus_client::registry::Registry;
use sidechain_config::Source;
use sidechain_edge::auth::jwt::{TokenService, TokenSettings};
use sidechain_edge::config::EdgeConfig;
use sidechain_edge::rate_limit::{Class, RateLimiter};
use sidechain_events::UserId;
use sidechain_infra::redis::{RedisConfig, connect};
use sidechain_test_support::RedisServer;

fn token_verification(c: &mut Criterion) {
    let tokens = TokenService::new(TokenSettings {
        secret: b"benchmark-secret-benchmark-secret-!!".to_vec(),
        previous_secrets: Vec::new(),
        issuer: "sidechain".into(),
        audience: "sidechain-api".into(),
        ttl: Duration::from_secs(3600),
        max_session: Duration::from_secs(86_400),
    });
    let token = tokens
        .issue(UserId::new(), "bench", None)
        .expect("issue")
        .token;
    c.bench_function("token_verify", |b| {
        b.iter(|| tokens.verify(std::hint::black_box(&token)).expect("valid"))
    });
}

fn rate_limiting(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // The Redis connection manager spawns its tasks on the runtime it is created in.
    let _context = runtime.enter();
    let server = RedisServer::start();
    let source = Source::default()
        .with(
            "REDIS_URL",
            server.url_for(sidechain_test_support::Identity::Edge),
        )
        .with("JWT_SECRET", "benchmark-secret-benchmark-secret-!!")
        // Generous quotas: the benchmark measures the check, not the refusals.
        .with("RATE_LIMIT_DEFAULT", "60000000/1m");
    let config = EdgeConfig::from_source(&source).expect("config");
    let redis = connect(&RedisConfig::from_source(&source).expect("redis config")).expect("redis");
    let limiter = RateLimiter::new(redis.clone(), config.rate_limits, &mut Registry::default());

    let mut group = c.benchmark_group("rate_limit");
    group.bench_function("redis_ping_floor", |b| {
        b.to_async(&runtime).iter(|| {
            let mut conn = redis.clone();
            async move {
                let _: String = redis::cmd("PING")
                    .query_async(&mut conn)
                    .await
                    .expect("pong");
            }
        })
    });
    group.bench_function("redis_gcra_check", |b| {
        b.to_async(&runtime).iter(|| async {
            let decision = limiter.check(Class::Default, "user:bench").await;
            assert_eq!(decision.backend, sidechain_edge::rate_limit::Backend::Redis);
            assert!(decision.allowed);
        })
    });
    group.bench_function("in_process_check", |b| {
        b.iter(|| limiter.check_local(Class::Default, std::hint::black_box("user:bench")))
    });
    group.finish();
    drop(server);
}

criterion_group!(benches, token_verification, rate_limiting);
criterion_main!(benches);
