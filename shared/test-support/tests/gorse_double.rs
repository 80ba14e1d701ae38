//! The Gorse test double keeps its state across a restart when given a journal, and its
//! control endpoint changes its behaviour at run time.

use sidechain_test_support::GorseDouble;

async fn put_like(url: &str, user: &str) -> reqwest::StatusCode {
    reqwest::Client::new()
        .put(format!("{url}/api/feedback"))
        .json(&serde_json::json!([{"FeedbackType": "like", "UserId": user, "ItemId": "p1", "Value": 1.0, "Timestamp": "2026-11-25T00:00:00Z", "Comment": ""}]))
        .send()
        .await
        .expect("sent")
        .status()
}

#[tokio::test]
async fn a_journaled_double_comes_back_with_its_state() {
    let dir = tempfile::tempdir().expect("dir");
    let journal = dir.path().join("gorse.jsonl");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let first = GorseDouble::serve_on(listener, None, Some(journal.clone())).await;
    assert!(put_like(&first.url(), "u1").await.is_success());
    let failing = reqwest::Client::new()
        .post(format!(
            "{}/__double/control?fail=1&status=503",
            first.url()
        ))
        .send()
        .await
        .expect("control");
    assert!(failing.status().is_success());
    assert_eq!(
        put_like(&first.url(), "u2").await,
        reqwest::StatusCode::SERVICE_UNAVAILABLE
    );
    drop(first);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let second = GorseDouble::serve_on(listener, None, Some(journal)).await;
    let record = second.record();
    assert_eq!(
        record.feedback.len(),
        1,
        "the accepted write came back, the refused one did not"
    );
    assert!(
        record
            .feedback
            .contains_key(&("like".into(), "u1".into(), "p1".into()))
    );
    let summary: serde_json::Value = reqwest::get(format!("{}/__double/record", second.url()))
        .await
        .expect("record")
        .json()
        .await
        .expect("json");
    assert_eq!(summary["feedback"][0]["user"], "u1");
}
