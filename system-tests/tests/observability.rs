//! Every metric the Grafana dashboards and the Prometheus alert rules query is exported by the
//! running services (after traffic that exercises every path, Gorse failures included).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use sidechain_system_tests::{Feed, System, eventually, send};

fn names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (start, _) in text.match_indices("sidechain_") {
        let name: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name)
            .to_owned();
        names.insert(base);
    }
    names
}

fn queried_names() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = vec![root.join("compose/prometheus/alerts.yml")];
    for entry in std::fs::read_dir(root.join("compose/grafana/dashboards")).expect("dashboards") {
        files.push(entry.expect("entry").path());
    }
    files
        .iter()
        .flat_map(|f| names_in(&std::fs::read_to_string(f).expect("readable")))
        .collect()
}

fn exported(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn dashboards_and_alerts_only_query_exported_metrics() {
    let queried = queried_names();
    assert!(
        queried.len() > 40,
        "found only {} names: {queried:?}",
        queried.len()
    );

    let system = System::start(&[("GORSE_BATCH_TIMEOUT", "100ms")]).await;
    let alice = system.register("alice").await;
    let bob = system.register("bob").await;
    let post = system.post(&bob, "techno").await;
    // One transient Gorse failure on the next write batch (a retry); nothing else calls Gorse
    // until the retry is seen, so the feeds' recommendation reads cannot take the failure.
    system.gorse.fail_next(1, 503);
    for (path, body) in [
        (
            "/api/v1/social/follow".to_owned(),
            json!({"target_user_id": bob.id}),
        ),
        (
            "/api/v1/social/like".to_owned(),
            json!({"activity_id": post}),
        ),
        (
            format!("/api/v1/posts/{post}/comments"),
            json!({"content": "nice"}),
        ),
    ] {
        let reply = send(
            system
                .api
                .request(Method::POST, &path)
                .json(&body)
                .bearer(&alice.token),
        )
        .await;
        assert!(reply.status.is_success(), "{path}: {:?}", reply.body);
    }
    eventually(
        "the retried batch reached Gorse",
        Duration::from_secs(20),
        || async {
            system
                .metrics(1)
                .await
                .contains("sidechain_gorse_retries_total")
        },
    )
    .await;
    for path in [
        "/api/v1/feed/timeline".to_owned(),
        "/api/v1/feed/timeline".to_owned(),
        "/api/v1/feed/trending".to_owned(),
        "/api/v1/feed/unified".to_owned(),
        "/api/v1/recommendations/for-you".to_owned(),
        format!("/api/v1/users/{}/posts", bob.id),
    ] {
        let reply = send(system.api.request(Method::GET, &path).bearer(&alice.token)).await;
        assert!(reply.status.is_success(), "{path}: {:?}", reply.body);
    }
    // Gorse goes away: batches are dead-lettered and feeds fall back to trending.
    system.gorse.go_away();
    system.post(&alice, "house").await;
    eventually("a dead-lettered batch", Duration::from_secs(20), || async {
        system
            .metrics(1)
            .await
            .contains("sidechain_feedback_dead_letter_entries_total")
    })
    .await;
    eventually(
        "a feed built without Gorse",
        Duration::from_secs(20),
        || async {
            let carol = format!("c{}", &uuid_suffix());
            let viewer = system.register(&carol).await;
            send(system.api.feed(Feed::Unified, None).bearer(&viewer.token)).await;
            system
                .metrics(2)
                .await
                .contains("sidechain_cache_gorse_fallbacks_total")
        },
    )
    .await;

    let mut exported_names = BTreeSet::new();
    for service in 0..3 {
        exported_names.extend(exported(&system.metrics(service).await));
    }
    let missing: Vec<_> = queried.difference(&exported_names).collect();
    assert!(missing.is_empty(), "queried but not exported: {missing:?}");
    system.stop().await;
}

fn uuid_suffix() -> String {
    format!(
        "{:08x}",
        std::process::id()
            ^ (std::time::SystemTime::now()
                .elapsed()
                .map_or(0, |d| d.subsec_nanos()))
    )
}
