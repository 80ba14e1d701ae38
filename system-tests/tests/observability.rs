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

    // An upload that is measured and one that is rejected, so the audio families have series.
    let good = wav(0.5);
    let mut fake = good[..44].to_vec();
    fake.extend_from_slice(&[0x5A; 64]);
    for file in [good, fake] {
        let reply = send(
            system
                .api
                .request(Method::POST, "/api/v1/audio/upload")
                .bearer(&alice.token)
                .header(
                    "Content-Type",
                    "multipart/form-data; boundary=observabilityBoundary",
                )
                .raw_body(multipart(&file)),
        )
        .await;
        assert!(reply.status.is_success(), "upload: {:?}", reply.body);
    }
    eventually("both uploads settled", Duration::from_secs(20), || async {
        let media = system.metrics(3).await;
        media.contains("sidechain_media_jobs_total{outcome=\"processed\"}")
            && media.contains("sidechain_media_jobs_total{outcome=\"rejected\"}")
    })
    .await;

    let mut exported_names = BTreeSet::new();
    for service in 0..4 {
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

/// Half a second of a sine as a 16-bit mono WAV.
fn wav(seconds: f32) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut writer = hound::WavWriter::new(&mut out, spec).expect("wav writer");
        for i in 0..(8_000.0 * seconds) as u32 {
            let sample =
                (f32::sin(i as f32 / 8_000.0 * 440.0 * std::f32::consts::TAU) * 9_000.0) as i16;
            writer.write_sample(sample).expect("sample");
        }
        writer.finalize().expect("finalize");
    }
    out.into_inner()
}

/// `file` as the `audio_file` part of a multipart body (boundary `observabilityBoundary`).
fn multipart(file: &[u8]) -> Vec<u8> {
    let mut body = b"--observabilityBoundary\r\nContent-Disposition: form-data; name=\"audio_file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n".to_vec();
    body.extend_from_slice(file);
    body.extend_from_slice(b"\r\n--observabilityBoundary--\r\n");
    body
}
