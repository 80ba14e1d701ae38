//! Rate limits against a real Redis: per client, shared by instances, and still enforced (per
//! instance) while Redis is down.

mod common;

use std::time::Duration;

use common::{Backends, Edge, Feed, send};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sidechain_test_support::metric;

async fn login(edge: &Edge) -> common::Reply {
    send(
        edge.api
            .request(Method::POST, "/api/v1/auth/login")
            .json(&json!({"username": "nobody", "password": "wrong password"})),
    )
    .await
}

#[tokio::test]
async fn the_eleventh_login_in_a_minute_gets_429_with_retry_after() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source()).await;
    for attempt in 1..=10 {
        let reply = login(&edge).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
        assert_eq!(reply.headers["ratelimit-limit"], "10");
        assert_eq!(
            reply.headers["ratelimit-remaining"],
            (10 - attempt).to_string().as_str()
        );
    }
    let limited = login(&edge).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.body["error"], "rate_limited");
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(
        (1..=6).contains(&retry_after),
        "one token comes back every 6 s; got {retry_after}"
    );
    assert_eq!(limited.headers["ratelimit-remaining"], "0");
    assert!(limited.headers.contains_key("ratelimit-reset"));

    // Other classes have their own budget.
    let feed = send(edge.api.feed(Feed::Trending, None)).await;
    assert_eq!(feed.headers["ratelimit-limit"], "100");
}

#[tokio::test]
async fn two_edges_on_one_redis_share_the_budget() {
    let backends = Backends::start();
    let first = Edge::start(backends.source()).await;
    let second = Edge::start(backends.source()).await;
    for _ in 0..5 {
        assert_eq!(login(&first).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(login(&second).await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(login(&first).await.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(login(&second).await.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn with_redis_down_requests_are_still_limited_and_served_then_shared_again() {
    let mut backends = Backends::start();
    let edge = Edge::start(backends.source().with("RATE_LIMIT_AUTH", "3/1m")).await;
    backends.redis.kill();

    for _ in 0..3 {
        let reply = login(&edge).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "served without Redis: {:?}",
            reply.body
        );
    }
    let limited = login(&edge).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the in-process limiter holds"
    );
    assert!(limited.headers.contains_key("retry-after"));
    let metrics = edge.metrics().await;
    assert_eq!(
        metric(&metrics, "sidechain_rate_limit_fallback_active"),
        Some(1.0)
    );
    assert!(
        metric(&metrics, "sidechain_rate_limit_decisions_total{class=\"auth\",decision=\"limited\",backend=\"local\"}")
            .is_some_and(|n| n >= 1.0)
    );

    backends.redis.restart();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        // An empty Redis: the shared bucket starts full again once Redis answers.
        let reply = login(&edge).await;
        let metrics = edge.metrics().await;
        if metric(&metrics, "sidechain_rate_limit_fallback_active") == Some(0.0) {
            assert_ne!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never went back to Redis"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
