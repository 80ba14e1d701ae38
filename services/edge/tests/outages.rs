//! A NATS outage: writes get 503 with Retry-After (never a 2xx for an event that was not
//! stored), and the edge recovers on its own when NATS returns. Idempotency keys make a retry
//! store the event once.

mod common;

use std::time::Duration;

use common::{Backends, Edge, NewPost, send};
use reqwest::StatusCode;

fn new_post() -> NewPost {
    NewPost {
        title: None,
        audio_url: "https://cdn.example/a.wav".to_owned(),
        waveform_url: None,
        bpm: 128.0,
        key: "F minor".to_owned(),
        genres: vec!["house".to_owned()],
        duration_seconds: 4.0,
        daw: None,
    }
}

#[tokio::test]
async fn writes_during_a_nats_outage_are_refused_with_503_and_none_is_lost() {
    let mut backends = Backends::start();
    let edge = Edge::start(backends.source()).await;
    let user = edge.register("writer").await;
    // A request that caches the session in the edge's memory.
    assert_eq!(
        send(edge.api.me().bearer(&user.token)).await.status,
        StatusCode::OK
    );

    let mut accepted = 0;
    let post = send(edge.api.create_post(&new_post()).bearer(&user.token)).await;
    assert_eq!(post.status, StatusCode::CREATED);
    accepted += 1;

    backends.nats.kill();
    for _ in 0..5 {
        let reply = send(edge.api.create_post(&new_post()).bearer(&user.token)).await;
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{:?}",
            reply.body
        );
        assert_eq!(reply.body["error"], "event_store_unavailable");
        assert!(reply.headers.contains_key("retry-after"));
    }
    // Degraded, not unready: the instance stays in its Service and answers 503 + Retry-After
    // itself (docs/operations.md, "Readiness").
    let ready = edge
        .admin_http
        .get(format!("{}/health/ready", edge.admin))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status(), StatusCode::OK);
    let report: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(report["status"], "degraded", "{report}");
    assert_ne!(report["checks"]["nats"], "up", "{report}");

    backends.nats.restart();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let reply = send(edge.api.create_post(&new_post()).bearer(&user.token)).await;
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

    let events = common::stream_events(&backends.nats).await;
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
    let upload = || {
        edge.api
            .create_post(&new_post())
            .bearer(&user.token)
            .idempotency_key("upload-42")
            .fetch()
    };
    let first = upload().await.expect("stored");
    let second = upload().await.expect("stored again");
    assert_eq!(first.id, second.id, "the retry names the same post");
    let events = common::stream_events(&backends.nats).await;
    assert_eq!(
        events
            .iter()
            .filter(|(s, _)| s == "events.post_created")
            .count(),
        1
    );
}

#[tokio::test]
async fn with_redis_stopped_the_edge_stays_in_service_and_signs_people_in() {
    let mut backends = Backends::start();
    let edge = Edge::start(backends.source()).await;
    backends.redis.kill();

    // Rate limits fall back to in-process buckets; accounts live in NATS.
    let user = edge.register("during_redis_outage").await;
    assert!(!user.token.is_empty());
    let ready = edge
        .admin_http
        .get(format!("{}/health/ready", edge.admin))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status(), StatusCode::OK);
    let report: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(report["status"], "degraded", "{report}");
    assert_ne!(report["checks"]["redis"], "up", "{report}");
    assert_eq!(report["checks"]["nats"], "up", "{report}");
}
