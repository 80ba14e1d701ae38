//! Posting a loop, as `plugin/src/network/api/AudioClient.cpp` (`uploadAudioWithMetadata`)
//! sends it through `NetworkClient::uploadMultipartData` (`plugin/src/network/NetworkClient.cpp`,
//! JUCE `URL::withParameter` + `withFileToUpload`): multipart, text parts first, numbers as
//! text, the file part `audio_file` named `<safe name>-<8 chars of the recording id>.wav` with
//! `audio/wav`, and no `Idempotency-Key`. The plugin reads `error`, `audio_url` (else `url`),
//! `id` (else `post_id`); a reply without `audio_url` is a failed upload. Then it plays
//! `audio_url` directly.

use std::io::Write as _;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use sidechain_system_tests::{System, eventually, send};

use crate::shape::{Json, at, expect_fields};

const AUDIO_CLIENT: &str = "plugin/src/network/api/AudioClient.cpp";
const BOUNDARY: &str = "-----------------------------a1b2c3d4e5f6juce";

fn wav(rate: u32, channels: u16, seconds: f32) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut writer = hound::WavWriter::new(&mut out, spec).expect("wav writer");
        for i in 0..(rate as f32 * seconds) as u32 {
            let sample =
                (f32::sin(i as f32 / rate as f32 * 220.0 * std::f32::consts::TAU) * 8000.0) as i16;
            for _ in 0..channels {
                writer.write_sample(sample).expect("sample");
            }
        }
        writer.finalize().expect("finalize");
    }
    out.into_inner()
}

#[tokio::test]
async fn the_plugins_multipart_upload_is_accepted_played_and_posted() {
    let system = System::start(&[("PUBLIC_BASE_URL", "https://media.sidechain.test")]).await;
    let user = system.register("looper").await;
    let file = wav(48_000, 2, 2.0);

    // The fields uploadAudioWithMetadata fills, in its spelling (juce::String(bpm, 1) etc.).
    let recording_id = "{3f2a1c0d-9e8b-4a53-9f6e-5a1d2a2e0b7c}";
    let fields = [
        ("recording_id", recording_id),
        ("filename", "my loop"),
        ("bpm", "128.0"),
        ("key", "F# minor"),
        ("genre", "House"),
        ("duration_seconds", "2.00"),
        ("sample_rate", "48000"),
        ("channels", "2"),
        ("daw", "Bitwig Studio"),
        ("duration_bars", "1"),
        (
            "midi_data",
            r#"{"events":[{"note":60,"velocity":100,"time":0.0}]}"#,
        ),
        ("comment_audience", "everyone"),
    ];
    let mut body = Vec::new();
    for (name, value) in fields {
        write!(
            body,
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
        .expect("write");
    }
    write!(
        body,
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"audio_file\"; filename=\"my-loop-{{3f2a1c.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
    )
    .expect("write");
    body.extend_from_slice(&file);
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
    assert!(reply.status.is_success(), "{:?}", reply.body);
    assert!(at(&reply.body, "error").is_none(), "{:?}", reply.body);
    expect_fields(
        &reply.body,
        AUDIO_CLIENT,
        &[
            ("audio_url", Json::Str),
            ("url", Json::Str),
            ("id", Json::Str),
            ("post_id", Json::Str),
        ],
    );
    let id = reply.body["id"].as_str().expect("id").to_owned();
    let audio_url = reply.body["audio_url"]
        .as_str()
        .expect("audio_url")
        .to_owned();
    assert!(
        !audio_url.is_empty(),
        "an empty audio_url is a failed upload"
    );
    assert!(audio_url.starts_with("https://media.sidechain.test/api/v1/audio/"));

    // The player fetches audio_url (here through the edge itself, which that host fronts).
    let path = &audio_url["https://media.sidechain.test".len()..];
    let played = reqwest::get(format!("{}{path}", system.api.base()))
        .await
        .expect("fetch audio");
    assert_eq!(played.status(), StatusCode::OK);
    assert_eq!(played.headers()["content-type"], "audio/wav");
    assert_eq!(
        played.bytes().await.expect("bytes").as_ref(),
        file.as_slice()
    );

    // And the loop is a post of the uploader's, with the audio_url the plugin was given.
    let api = system.api.clone();
    let (token, user_id) = (user.token.clone(), user.id.clone());
    eventually(
        "the upload in the uploader's posts",
        Duration::from_secs(10),
        || {
            let (api, token, user_id, id, audio_url) = (
                api.clone(),
                token.clone(),
                user_id.clone(),
                id.clone(),
                audio_url.clone(),
            );
            async move {
                let page = send(
                    api.request(Method::GET, &format!("/api/v1/users/{user_id}/posts"))
                        .bearer(&token),
                )
                .await;
                page.body["activities"].as_array().is_some_and(|posts| {
                    posts
                        .iter()
                        .any(|p| p["id"] == id.as_str() && p["audio_url"] == audio_url.as_str())
                })
            }
        },
    )
    .await;
    system.stop().await;
}
