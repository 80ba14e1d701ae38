//! One like is one trace: the edge's HTTP server span, the JetStream publish (producer), the
//! feedback service's consumer spans, the Gorse HTTP call (client) and Redis calls all share the
//! trace id the client sent in `traceparent`, exported over OTLP to an in-process receiver.
//!
//! This binary installs the real telemetry stack as the process's global subscriber, so it
//! holds this one test.

use std::time::Duration;

use reqwest::StatusCode;
use sidechain_system_tests::{System, eventually, send};
use sidechain_telemetry::TelemetryConfig;
use sidechain_test_support::OtlpReceiver;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spans_of_one_like_share_a_trace_id_from_the_edge_to_the_gorse_call() {
    let receiver = OtlpReceiver::start().await;
    let config = TelemetryConfig {
        log_level: "warn".to_owned(),
        otel_exporter_otlp_endpoint: Some(receiver.endpoint()),
        ..TelemetryConfig::default()
    };
    let (subscriber, telemetry) =
        sidechain_telemetry::build("sidechain-system-test", &config).expect("telemetry");
    tracing::subscriber::set_global_default(subscriber).expect("first subscriber of this process");

    let system = System::start(&[("GORSE_BATCH_TIMEOUT", "100ms")]).await;
    let alice = system.register("alice").await;
    let bob = system.register("bob").await;
    let post = system.post(&bob, "techno").await;
    // Let the earlier events reach Gorse so the like travels in a batch of its own.
    eventually(
        "the post reached Gorse",
        Duration::from_secs(10),
        || async { system.gorse.record().items.contains_key(&post) },
    )
    .await;

    let like = send(
        system
            .api
            .like(&post, None)
            .bearer(&alice.token)
            .header("traceparent", &format!("00-{TRACE_ID}-00f067aa0ba902b7-01")),
    )
    .await;
    assert_eq!(like.status, StatusCode::OK);
    eventually(
        "the like reached Gorse",
        Duration::from_secs(10),
        || async {
            system.gorse.record().feedback.contains_key(&(
                "like".to_owned(),
                alice.id.clone(),
                post.clone(),
            ))
        },
    )
    .await;
    // The Gorse request itself carried the trace.
    let carried = system
        .gorse
        .record()
        .requests
        .iter()
        .filter(|r| r.method == "PUT" && r.path == "/api/feedback")
        .any(|r| {
            r.traceparent
                .as_deref()
                .is_some_and(|t| t.contains(TRACE_ID))
        });
    assert!(carried, "PUT /api/feedback carried traceparent {TRACE_ID}");

    let reply = send(system.api.health()).await;
    assert_eq!(reply.status, StatusCode::OK);
    // The like's latency sample carries its trace id as an exemplar (OpenMetrics).
    let open_metrics = reqwest::Client::new()
        .get(format!("{}/metrics", system.admin[0]))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        open_metrics.lines().any(|l| l
            .starts_with("sidechain_http_request_duration_seconds_bucket")
            && l.contains(r#"route="/api/v1/social/like""#)
            && l.contains(&format!("# {{trace_id=\"{TRACE_ID}\"}}"))),
        "no exemplar with the like's trace id"
    );
    system.stop().await;
    telemetry.shutdown();

    let spans: Vec<_> = receiver
        .spans()
        .into_iter()
        .filter(|s| s.trace_id == TRACE_ID)
        .collect();
    let has = |name: &str, kind: i32| spans.iter().any(|s| s.name == name && s.kind == kind);
    let names: Vec<(String, i32)> = spans.iter().map(|s| (s.name.clone(), s.kind)).collect();
    // OTLP kinds: 2 server, 3 client, 4 producer, 5 consumer.
    assert!(
        has("POST /api/v1/social/like", 2),
        "edge server span missing: {names:?}"
    );
    assert!(
        has("publish events.like", 4),
        "publish span missing: {names:?}"
    );
    assert!(
        has("receive events.like", 5),
        "feedback consumer span missing: {names:?}"
    );
    assert!(
        has("process feedback batch", 5),
        "feedback batch span missing: {names:?}"
    );
    assert!(
        has("PUT /api/feedback", 3),
        "Gorse client span missing: {names:?}"
    );
    assert!(
        has("evalsha", 3),
        "Redis span (rate limit) missing: {names:?}"
    );
    assert!(
        has("process auth.session", 2),
        "cache service span missing: {names:?}"
    );
    assert!(
        has("process events.like", 5),
        "cache read-model span missing: {names:?}"
    );
    let publish = spans
        .iter()
        .find(|s| s.name == "publish events.like")
        .expect("publish");
    assert_eq!(
        publish
            .attributes
            .get("messaging.system")
            .map(String::as_str),
        Some("nats")
    );
    assert_eq!(
        publish
            .attributes
            .get("messaging.destination.name")
            .map(String::as_str),
        Some("events.like")
    );
}
