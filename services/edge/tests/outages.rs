//! A NATS outage: writes get 503 with Retry-After (never a 2xx for an event that was not
//! stored), and the edge recovers on its own when NATS returns. Idempotency keys make a retry
//! store the event once.

mod common;

use std::time::Duration;

use common::{Backends, Edge};
use reqwest::{Method, StatusCode};
use serde_json::json;

fn new_post() -> serde_json::Value {
    json!({"audio_url": "https://cdn.example/a.wav", "bpm": 128, "key": "F minor", "genres": ["house"], "duration_seconds": 4.0})
}

#[tokio::test]
async fn writes_during_a_nats_outage_are_refused_with_503_and_none_is_lost() {
    let mut backends = Backends::start();
    let edge = Edge::start(backends.source()).await;
    let user = edge.register("writer").await;
    // A request that caches the session in the edge's memory.
    assert_eq!(
        edge.call(Method::GET, "/api/v1/auth/me", Some(&user.token), None)
            .await
            .status,
        StatusCode::OK
    );

    let mut accepted = 0;
    let post = edge
        .call(
            Method::POST,
            "/api/v1/feed/post",
            Some(&user.token),
            Some(new_post()),
        )
        .await;
    assert_eq!(post.status, StatusCode::CREATED);
    accepted += 1;

    backends.nats.kill();
    for _ in 0..5 {
        let reply = edge
            .call(
                Method::POST,
                "/api/v1/feed/post",
                Some(&user.token),
                Some(new_post()),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{:?}",
            reply.body
        );
        assert_eq!(reply.body["error"], "event_store_unavailable");
        assert!(reply.headers.contains_key("retry-after"));
    }
    let ready = reqwest::get(format!("{}/health/ready", edge.admin))
        .await
        .expect("ready");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);

    backends.nats.restart();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let reply = edge
            .call(
                Method::POST,
                "/api/v1/feed/post",
                Some(&user.token),
                Some(new_post()),
            )
            .await;
        if reply.status == StatusCode::CREATED {
            accepted += 1;
            break;
        }
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{:?}",
            reply.body
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the edge never recovered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    edge.wait_ready().await;

    let events = common::stream_events(&backends.nats.url()).await;
    let posts = events
        .iter()
        .filter(|(s, _)| s == "events.post_created")
        .count();
    assert_eq!(posts, accepted, "exactly the accepted writes are stored");
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_is_stored_once() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source()).await;
    let user = edge.register("retrier").await;
    let client = reqwest::Client::new();
    let send = || {
        client
            .post(format!("{}/api/v1/feed/post", edge.base))
            .bearer_auth(&user.token)
            .header("idempotency-key", "upload-42")
            .json(&new_post())
            .send()
    };
    let first: serde_json::Value = send().await.expect("sent").json().await.expect("json");
    let second: serde_json::Value = send().await.expect("sent").json().await.expect("json");
    assert_eq!(first["id"], second["id"], "the retry names the same post");
    let events = common::stream_events(&backends.nats.url()).await;
    assert_eq!(
        events
            .iter()
            .filter(|(s, _)| s == "events.post_created")
            .count(),
        1
    );
}
