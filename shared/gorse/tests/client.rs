//! The Gorse client against the Gorse test double: formats, retries, breaker, outages.

use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use sidechain_config::Source;
use sidechain_gorse::{BreakerState, Feedback, GorseClient, GorseConfig, GorseError, Item};
use sidechain_test_support::GorseDouble;

fn client(double: &GorseDouble, extra: &[(&str, &str)]) -> (GorseClient, Registry) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut source = Source::default()
        .with("GORSE_URL", double.url())
        .with("GORSE_API_KEY", "key")
        .with("GORSE_RETRY_BASE_DELAY", "20ms")
        .with("GORSE_REQUEST_TIMEOUT", "2s");
    for (k, v) in extra {
        source = source.with(*k, *v);
    }
    let config = GorseConfig::from_source(&source).expect("config");
    let mut registry = Registry::default();
    let client = GorseClient::new(&config, &mut registry).expect("client");
    (client, registry)
}

fn like(user: &str, item: &str) -> Feedback {
    Feedback {
        feedback_type: "like".into(),
        user_id: user.into(),
        item_id: item.into(),
        value: 1.0,
        timestamp: "2026-11-25T10:00:00Z".into(),
        comment: String::new(),
    }
}

fn metrics(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry).expect("encode");
    out
}

#[tokio::test]
async fn feedback_is_put_with_the_api_key_and_stored_once_however_often_it_is_sent() {
    let double = GorseDouble::start_with_api_key("key").await;
    let (client, _) = client(&double, &[]);
    let batch = vec![like("u1", "p1"), like("u2", "p1")];
    assert_eq!(
        client
            .put_feedback(&batch)
            .await
            .expect("stored")
            .row_affected,
        2
    );
    client.put_feedback(&batch).await.expect("stored again");

    let record = double.record();
    assert_eq!(
        record.feedback.len(),
        2,
        "PUT overwrites: no double counting"
    );
    assert_eq!(record.feedback_received.len(), 4);
    assert!(record.requests.iter().all(|r| r.method == "PUT"));
}

// server/rest.go (v0.5.11) `AuthFilter`: `/api/health/*` skips the key; any other route with a
// wrong `X-API-Key` gets 401 and the plain-text body `unauthorized`.
#[tokio::test]
async fn a_wrong_api_key_is_unauthorized_retryable_and_invisible_to_readiness() {
    let double = GorseDouble::start_with_api_key("other").await;
    let (client, _) = client(&double, &[]);
    let err = client
        .put_feedback(&[like("u", "i")])
        .await
        .expect_err("401");
    assert_eq!(
        err,
        GorseError::Unauthorized {
            status: 401,
            body: "unauthorized".into()
        }
    );
    assert!(err.is_retryable(), "fixing the key makes it succeed");
    assert_eq!(double.record().requests.len(), 1, "no HTTP retries on 401");

    client.ready().await.expect("health skips the key");
    assert!(matches!(
        client.authorized().await,
        Err(GorseError::Unauthorized { status: 401, .. })
    ));

    double.set_api_key(Some("key"));
    client.authorized().await.expect("the key now matches");
    client
        .put_feedback(&[like("u", "i")])
        .await
        .expect("stored");
}

#[tokio::test]
async fn two_failures_then_success_is_delivered_once_after_backoff() {
    let double = GorseDouble::start().await;
    let (client, registry) = client(&double, &[]);
    double.fail_next(2, 503);
    client
        .put_feedback(&[like("u", "i")])
        .await
        .expect("third attempt succeeds");
    let record = double.record();
    assert_eq!(record.requests.len(), 3);
    assert_eq!(record.feedback.len(), 1);
    assert!(metrics(&registry).contains("gorse_retries_total{endpoint=\"/api/feedback\"} 2"));
}

#[tokio::test]
async fn retries_stop_after_the_configured_number() {
    let double = GorseDouble::start().await;
    let (client, _) = client(&double, &[("GORSE_RETRY_MAX_ATTEMPTS", "4")]);
    double.fail_next(10, 500);
    let err = client
        .put_feedback(&[like("u", "i")])
        .await
        .expect_err("gives up");
    assert!(matches!(err, GorseError::Unavailable(_)), "{err:?}");
    assert_eq!(
        double.record().requests.len(),
        4,
        "first attempt and 3 retries"
    );
}

#[tokio::test]
async fn a_429_waits_at_least_retry_after() {
    let double = GorseDouble::start().await;
    let (client, _) = client(&double, &[]);
    double.fail_next(1, 429);
    let started = Instant::now();
    client
        .put_feedback(&[like("u", "i")])
        .await
        .expect("after the wait");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_breaker_opens_after_consecutive_failures_and_fails_fast() {
    let double = GorseDouble::start().await;
    let (client, _) = client(
        &double,
        &[
            ("GORSE_RETRY_MAX_ATTEMPTS", "1"),
            ("GORSE_BREAKER_FAILURES", "2"),
        ],
    );
    double.fail_next(2, 500);
    for _ in 0..2 {
        client
            .put_feedback(&[like("u", "i")])
            .await
            .expect_err("500");
    }
    assert_eq!(client.breaker().state(), BreakerState::Open);
    let err = client
        .put_feedback(&[like("u", "i")])
        .await
        .expect_err("fast");
    assert_eq!(err, GorseError::CircuitOpen);
    assert_eq!(double.record().requests.len(), 2, "no call while open");

    client.breaker().half_open();
    client
        .put_feedback(&[like("u", "i")])
        .await
        .expect("probe succeeds");
    assert_eq!(client.breaker().state(), BreakerState::Closed);
}

#[tokio::test]
async fn an_absent_gorse_is_unavailable_and_a_returning_one_works() {
    let double = GorseDouble::start().await;
    let (client, _) = client(&double, &[("GORSE_RETRY_MAX_ATTEMPTS", "2")]);
    double.go_away();
    let err = client.insert_items(&[]).await.expect_err("refused");
    assert!(matches!(err, GorseError::Unavailable(_)), "{err:?}");
    assert!(client.ready().await.is_err());
    double.come_back().await;
    client.ready().await.expect("ready again");
    let item = Item {
        item_id: "p1".into(),
        is_hidden: false,
        categories: vec!["techno".into()],
        labels: serde_json::json!({"bpm": 128}),
        timestamp: "2026-11-25T10:00:00Z".into(),
        comment: String::new(),
    };
    client.insert_items(&[item]).await.expect("stored");
    client.delete_item("p1").await.expect("deleted");
    assert!(double.record().items.is_empty());
}

#[tokio::test]
async fn recommendations_are_read_once_without_retries() {
    let double = GorseDouble::start().await;
    let (client, _) = client(&double, &[]);
    double.set_recommendations("u1", vec!["a".into(), "b".into(), "c".into()]);
    assert_eq!(
        client.recommend("u1", 2, 1).await.expect("ok"),
        vec!["b", "c"]
    );
    double.fail_next(1, 503);
    client
        .recommend("u1", 2, 0)
        .await
        .expect_err("no retry on reads");
    assert_eq!(double.record().requests.len(), 2);
}
