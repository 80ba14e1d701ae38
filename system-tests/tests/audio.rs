//! Audio through the whole system: an upload is stored by the edge, measured by the media
//! service and applied by the cache service, so a follower's timeline shows the post with the
//! measured duration (not the uploader's claim) and a waveform that is served; a file that
//! only looks like audio is rejected and its post disappears.

use std::io::Write as _;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use sidechain_system_tests::{System, User, eventually, send};

const BOUNDARY: &str = "----systemTestBoundary";

fn wav(rate: u32, seconds: f32) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut writer = hound::WavWriter::new(&mut out, spec).expect("wav writer");
        for i in 0..(rate as f32 * seconds) as u32 {
            let sample = (f32::sin(i as f32 / rate as f32 * 330.0 * std::f32::consts::TAU)
                * 12_000.0) as i16;
            writer.write_sample(sample).expect("left");
            writer.write_sample(sample).expect("right");
        }
        writer.finalize().expect("finalize");
    }
    out.into_inner()
}

async fn upload(system: &System, user: &User, file: &[u8], claimed_seconds: &str) -> String {
    let mut body = Vec::new();
    for (name, value) in [
        ("filename", "claimed"),
        ("bpm", "120.0"),
        ("duration_seconds", claimed_seconds),
    ] {
        write!(
            body,
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
        .expect("write");
    }
    write!(
        body,
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"audio_file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
    )
    .expect("write");
    body.extend_from_slice(file);
    write!(body, "\r\n--{BOUNDARY}--\r\n").expect("write");
    let reply = send(
        system
            .api
            .request(Method::POST, "/api/v1/audio/upload")
            .bearer(&user.token)
            .header(
                "Content-Type",
                &format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .raw_body(body),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    reply.body["id"].as_str().expect("id").to_owned()
}

/// The post as the follower's timeline shows it, if it is there.
async fn in_timeline(system: &System, follower: &User, id: &str) -> Option<serde_json::Value> {
    let page = send(
        system
            .api
            .request(Method::GET, "/api/v1/feed/timeline")
            .bearer(&follower.token),
    )
    .await;
    page.body["activities"]
        .as_array()?
        .iter()
        .find(|p| p["id"] == id)
        .cloned()
}

#[tokio::test]
async fn an_upload_reaches_followers_with_its_measured_duration_and_a_waveform() {
    let system = System::start(&[]).await;
    let author = system.register("producer").await;
    let follower = system.register("listener").await;
    let followed = send(system.api.follow(&author.id).bearer(&follower.token)).await;
    assert!(followed.status.is_success(), "{:?}", followed.body);

    // The claim says 9 s; the file holds 2.5 s.
    let id = upload(&system, &author, &wav(44_100, 2.5), "9.00").await;
    eventually(
        "the measured post in the follower's timeline",
        Duration::from_secs(20),
        || async {
            in_timeline(&system, &follower, &id)
                .await
                .is_some_and(|post| post["waveform_url"].as_str().is_some_and(|u| !u.is_empty()))
        },
    )
    .await;
    let shown = in_timeline(&system, &follower, &id).await.expect("shown");
    let duration = shown["duration_seconds"].as_f64().expect("duration");
    assert!((duration - 2.5).abs() < 0.001, "measured wins: {duration}");
    let waveform_url = shown["waveform_url"].as_str().expect("waveform_url");
    let path = &waveform_url[waveform_url.find("/api/v1/audio/").expect("path")..];
    let waveform: serde_json::Value = reqwest::get(format!("{}{path}", system.api.base()))
        .await
        .expect("waveform")
        .json()
        .await
        .expect("json");
    assert_eq!(waveform["peaks"].as_array().map(Vec::len), Some(800));
    let svg = reqwest::get(format!(
        "{}{}",
        system.api.base(),
        path.replace(".json", ".svg")
    ))
    .await
    .expect("svg");
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().await.expect("text").starts_with("<svg"));

    // A file that only starts like a WAV is rejected, and its post leaves the timeline.
    let fake = {
        let mut bytes = wav(44_100, 1.0)[..44].to_vec();
        bytes.extend_from_slice(&[0x5A; 100]);
        bytes
    };
    let rejected = upload(&system, &author, &fake, "1.00").await;
    eventually(
        "the post shown at first",
        Duration::from_secs(10),
        || async {
            in_timeline(&system, &follower, &rejected).await.is_some()
                || system
                    .events()
                    .await
                    .iter()
                    .any(|(s, _)| s == "events.audio_rejected")
        },
    )
    .await;
    eventually(
        "the rejected post gone from the timeline",
        Duration::from_secs(20),
        || async { in_timeline(&system, &follower, &rejected).await.is_none() },
    )
    .await;
    let status: serde_json::Value = reqwest::get(format!(
        "{}/api/v1/audio/{rejected}/status",
        system.api.base()
    ))
    .await
    .expect("status")
    .json()
    .await
    .expect("json");
    assert_eq!(status["status"], "rejected", "{status}");
    assert!(
        status["reason"]
            .as_str()
            .is_some_and(|r| r.contains("truncated")),
        "{status}"
    );
    let processed: serde_json::Value =
        reqwest::get(format!("{}/api/v1/audio/{id}/status", system.api.base()))
            .await
            .expect("status")
            .json()
            .await
            .expect("json");
    assert_eq!(processed["status"], "processed", "{processed}");
    let reasons: Vec<String> = system
        .events()
        .await
        .into_iter()
        .filter_map(|(_, event)| match event.payload {
            Some(sidechain_events::events::event::Payload::AudioRejected(r)) => Some(r.reason),
            _ => None,
        })
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("truncated")),
        "{reasons:?}"
    );
    system.stop().await;
}
