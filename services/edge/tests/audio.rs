//! `POST /api/v1/audio/upload` and `GET /api/v1/audio/{id}` against real NATS (object store,
//! events) and Redis: the plugin's multipart request is accepted and its file served back byte
//! for byte, with ranges; refused uploads (not audio, empty, too large, stalled) get their 4xx
//! and leave nothing in the object store or the stream.

mod common;

use std::io::{Read as _, Write as _};
use std::time::Duration;

use common::{Backends, Edge, TestUser, stream_events, subjects};
use reqwest::StatusCode;
use sidechain_events::events::event::Payload;

const BOUNDARY: &str = "----sidechainTestBoundary7MA4YWxkTrZu0gW";

/// A WAV file made here: `seconds` of a 440 Hz sine at `rate` Hz, `channels` channels, 16 bit.
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
        let frames = (rate as f32 * seconds) as u32;
        for i in 0..frames {
            let sample = (f32::sin(i as f32 / rate as f32 * 440.0 * std::f32::consts::TAU)
                * 0.5
                * f32::from(i16::MAX)) as i16;
            for _ in 0..channels {
                writer.write_sample(sample).expect("sample");
            }
        }
        writer.finalize().expect("finalize");
    }
    out.into_inner()
}

/// A multipart body as JUCE's `URL::withParameter` + `withFileToUpload` builds it: the text
/// parts, then the file part.
fn multipart(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        write!(
            body,
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
        .expect("write");
    }
    if let Some((filename, bytes)) = file {
        write!(
            body,
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"audio_file\"; filename=\"{filename}\"\r\nContent-Type: audio/wav\r\n\r\n"
        )
        .expect("write");
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    write!(body, "--{BOUNDARY}--\r\n").expect("write");
    body
}

/// The fields `AudioClient.cpp` (`uploadAudioWithMetadata`) sends, with its string numbers.
fn plugin_fields() -> Vec<(&'static str, &'static str)> {
    vec![
        ("recording_id", "5a1d2a2e-0b7c-4a53-9f6e-3f2a1c0d9e8b"),
        ("filename", "Night Drive"),
        ("bpm", "120.0"),
        ("key", "A minor"),
        ("genre", "Techno"),
        ("duration_seconds", "1.50"),
        ("sample_rate", "44100"),
        ("channels", "2"),
        ("daw", "Ableton Live"),
        ("duration_bars", "1"),
        ("comment_audience", "everyone"),
    ]
}

async fn upload(
    edge: &Edge,
    user: &TestUser,
    body: Vec<u8>,
    key: Option<&str>,
) -> reqwest::Response {
    let mut request = edge
        .admin_http
        .post(format!("{}/api/v1/audio/upload", edge.base))
        .bearer_auth(&user.token)
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await.expect("upload sent")
}

async fn json(response: reqwest::Response) -> (StatusCode, serde_json::Value) {
    let status = response.status();
    let body = response.json().await.expect("JSON body");
    (status, body)
}

/// Messages in the object store's stream: chunks and metadata of every object ever put.
async fn object_store_messages(backends: &Backends) -> u64 {
    let client = backends
        .nats
        .connect(sidechain_test_support::Identity::Admin)
        .await;
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream("OBJ_audio").await.expect("OBJ_audio stream");
    stream.info().await.expect("info").state.messages
}

fn audio_path(audio_url: &str) -> &str {
    let at = audio_url.find("/api/v1/audio/").expect("audio path");
    &audio_url[at..]
}

#[tokio::test]
async fn the_plugins_upload_is_stored_recorded_and_served_byte_exact() {
    let backends = Backends::start();
    let edge = Edge::start(
        backends
            .source()
            .with("PUBLIC_BASE_URL", "https://api.sidechain.test"),
    )
    .await;
    let user = edge.register("uploader").await;
    let file = wav(44_100, 2, 1.5);

    let response = upload(
        &edge,
        &user,
        multipart(&plugin_fields(), Some(("Night-Drive-5a1d2a2e.wav", &file))),
        None,
    )
    .await;
    let (status, body) = json(response).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().expect("id is a string");
    assert_eq!(body["post_id"], id);
    let audio_url = body["audio_url"].as_str().expect("audio_url is a string");
    assert_eq!(
        audio_url,
        format!("https://api.sidechain.test/api/v1/audio/{id}")
    );
    assert_eq!(body["url"], audio_url);
    assert_eq!(body["format"], "wav");
    assert_eq!(body["size_bytes"], file.len() as u64);
    assert_eq!(body["bpm"], 120.0);
    assert_eq!(body["filename"], "Night Drive");

    // Both events are in the stream: the upload (for the media service) and the post.
    let events = stream_events(&backends.nats).await;
    let uploaded = events
        .iter()
        .find_map(|(_, e)| match &e.payload {
            Some(Payload::AudioUploaded(u)) => Some(u.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no audio_uploaded in {:?}", subjects(&events)));
    assert_eq!(uploaded.post_id, id);
    assert_eq!(uploaded.claimed_bpm, 120.0);
    assert_eq!(uploaded.claimed_sample_rate, 44_100);
    assert_eq!(uploaded.claimed_channels, 2);
    assert_eq!(
        uploaded.recording_id,
        "5a1d2a2e-0b7c-4a53-9f6e-3f2a1c0d9e8b"
    );
    assert_eq!(uploaded.size_bytes, file.len() as i64);
    let created = events
        .iter()
        .find_map(|(_, e)| match &e.payload {
            Some(Payload::PostCreated(p)) => Some(p.clone()),
            _ => None,
        })
        .expect("post_created");
    assert_eq!(created.post_id, id);
    assert_eq!(created.audio_url, audio_url);
    assert_eq!(created.genres, vec!["techno"]);

    // Served back whole, without a token, with the headers players and caches rely on.
    let url = format!("{}{}", edge.base, audio_path(audio_url));
    let http = reqwest::Client::new();
    let whole = http.get(&url).send().await.expect("get");
    assert_eq!(whole.status(), StatusCode::OK);
    let headers = whole.headers().clone();
    assert_eq!(headers["content-type"], "audio/wav");
    assert_eq!(headers["accept-ranges"], "bytes");
    assert!(
        headers["cache-control"]
            .to_str()
            .expect("ascii")
            .contains("immutable")
    );
    let etag = headers["etag"].to_str().expect("etag").to_owned();
    assert_eq!(whole.bytes().await.expect("body").as_ref(), file.as_slice());

    // Ranges are byte-exact.
    let len = file.len();
    for (range, start, end) in [
        ("bytes=0-99".to_owned(), 0, 99),
        (format!("bytes={}-", len - 10), len - 10, len - 1),
        ("bytes=-1000".to_owned(), len - 1000, len - 1),
        (format!("bytes=131000-{}", len + 50), 131_000, len - 1),
    ] {
        let part = http
            .get(&url)
            .header("Range", &range)
            .send()
            .await
            .expect("range");
        assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            part.headers()["content-range"],
            format!("bytes {start}-{end}/{len}").as_str(),
            "{range}"
        );
        assert_eq!(
            part.bytes().await.expect("body").as_ref(),
            &file[start..=end],
            "{range}"
        );
    }
    let beyond = http
        .get(&url)
        .header("Range", format!("bytes={len}-"))
        .send()
        .await
        .expect("range");
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        beyond.headers()["content-range"],
        format!("bytes */{len}").as_str()
    );
    let (_, error) = json(beyond).await;
    assert_eq!(error["error"], "range_not_satisfiable");

    let unchanged = http
        .get(&url)
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("conditional");
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);

    // Not processed yet: no waveform; an unknown id is a 404 too.
    let waveform = http
        .get(format!("{url}/waveform.json"))
        .send()
        .await
        .expect("waveform");
    assert_eq!(waveform.status(), StatusCode::NOT_FOUND);
    let status: serde_json::Value = http
        .get(format!("{url}/status"))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert_eq!(status["status"], "processing");
    let unknown = http
        .get(format!(
            "{}/api/v1/audio/0190c0de-0000-7000-8000-000000000001",
            edge.base
        ))
        .send()
        .await
        .expect("unknown");
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    let metrics = edge.metrics().await;
    assert!(
        metrics.contains("sidechain_audio_uploads_total{outcome=\"accepted\"} 1"),
        "{metrics}"
    );
    edge.stop().await;
}

#[tokio::test]
async fn a_retry_with_the_same_key_stores_one_post() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source()).await;
    let user = edge.register("retrier").await;
    let file = wav(22_050, 1, 0.5);
    let body = || multipart(&plugin_fields(), Some(("a.wav", &file)));
    let (first_status, first) = json(upload(&edge, &user, body(), Some("upload-1")).await).await;
    let (second_status, second) = json(upload(&edge, &user, body(), Some("upload-1")).await).await;
    assert_eq!(first_status, StatusCode::ACCEPTED);
    assert_eq!(second_status, StatusCode::ACCEPTED);
    assert_eq!(first["id"], second["id"]);
    let events = stream_events(&backends.nats).await;
    let count = |wanted: &str| subjects(&events).iter().filter(|s| **s == wanted).count();
    assert_eq!(count("events.audio_uploaded"), 1);
    assert_eq!(count("events.post_created"), 1);

    // The same key with another file is refused and stores nothing new.
    let other = wav(22_050, 1, 0.25);
    let (status, error) = json(
        upload(
            &edge,
            &user,
            multipart(&plugin_fields(), Some(("b.wav", &other))),
            Some("upload-1"),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["error"], "idempotency_key_reused");
    edge.stop().await;
}

#[tokio::test]
async fn refused_uploads_get_their_4xx_and_leave_nothing_behind() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source().with("AUDIO_MAX_BYTES", "65536")).await;
    let user = edge.register("refused").await;
    let fields = plugin_fields();

    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "text renamed to .wav",
            multipart(
                &fields,
                Some(("notes.wav", b"just some text, not audio at all")),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "a PNG",
            multipart(
                &fields,
                Some(("cover.wav", b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR")),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "zero-length",
            multipart(&fields, Some(("empty.wav", b""))),
            StatusCode::BAD_REQUEST,
            "empty_file",
        ),
        (
            "too large",
            multipart(&fields, Some(("long.wav", &wav(44_100, 2, 1.0)))),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "no file part",
            multipart(&fields, None),
            StatusCode::BAD_REQUEST,
            "missing_audio_file",
        ),
        (
            "a bpm that is not a number",
            multipart(&[("bpm", "fast")], Some(("a.wav", &wav(8_000, 1, 0.1)))),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "not multipart at all",
            b"{\"audio_url\":\"x\"}".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_multipart",
        ),
    ];
    for (what, body, status, code) in cases {
        let (got, error) = json(upload(&edge, &user, body, None).await).await;
        assert_eq!(got, status, "{what}: {error}");
        assert_eq!(error["error"], code, "{what}");
        assert!(
            error["request_id"].as_str().is_some_and(|r| !r.is_empty()),
            "{what}"
        );
    }
    // A body declared larger than allowed is refused before it is read.
    let huge = edge
        .admin_http
        .post(format!("{}/api/v1/audio/upload", edge.base))
        .bearer_auth(&user.token)
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .header("Content-Length", "1073741824")
        .body(vec![0_u8; 10])
        .send()
        .await;
    if let Ok(response) = huge {
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    assert_eq!(object_store_messages(&backends).await, 0, "nothing stored");
    let events = stream_events(&backends.nats).await;
    assert!(
        !subjects(&events).contains(&"events.audio_uploaded"),
        "{:?}",
        subjects(&events)
    );
    let metrics = edge.metrics().await;
    for outcome in [
        "not_audio",
        "empty",
        "too_large",
        "malformed",
        "invalid_field",
    ] {
        assert!(
            metrics.contains(&format!(
                "sidechain_audio_uploads_total{{outcome=\"{outcome}\"}}"
            )),
            "{outcome}"
        );
    }
    edge.stop().await;
}

#[tokio::test]
async fn a_stalled_upload_gets_408_and_stores_nothing() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source().with("UPLOAD_IDLE_TIMEOUT", "300ms")).await;
    let user = edge.register("slowloris").await;
    let file = wav(8_000, 1, 0.5);
    let body = multipart(&[], Some(("slow.wav", &file)));
    let addr = edge.base.trim_start_matches("http://").to_owned();
    let token = user.token.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        write!(
            stream,
            "POST /api/v1/audio/upload HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .expect("headers");
        // Half the body, then nothing.
        stream.write_all(&body[..body.len() / 2]).expect("half");
        let mut answer = Vec::new();
        let mut buf = [0_u8; 4096];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                break;
            }
        }
        String::from_utf8_lossy(&answer).into_owned()
    })
    .await
    .expect("client");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert_eq!(object_store_messages(&backends).await, 0, "nothing stored");
    edge.stop().await;
}

#[tokio::test]
async fn flac_and_ogg_are_accepted_and_served_with_their_type() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source()).await;
    let user = edge.register("formats").await;
    for (bytes, name, format, content_type) in [
        (
            &include_bytes!("../../media/tests/fixtures/sine-22050-stereo-1s.flac")[..],
            "a.flac",
            "flac",
            "audio/flac",
        ),
        (
            &include_bytes!("../../media/tests/fixtures/sine-22050-stereo-1s.ogg")[..],
            "a.ogg",
            "ogg",
            "audio/ogg",
        ),
    ] {
        let (status, body) =
            json(upload(&edge, &user, multipart(&[], Some((name, bytes))), None).await).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{format}: {body}");
        assert_eq!(body["format"], format);
        let url = format!(
            "{}{}",
            edge.base,
            audio_path(body["audio_url"].as_str().expect("url"))
        );
        let served = reqwest::get(&url).await.expect("get");
        assert_eq!(served.headers()["content-type"], content_type);
        assert_eq!(served.bytes().await.expect("bytes").as_ref(), bytes);
    }
    edge.stop().await;
}

#[tokio::test]
async fn when_the_event_store_refuses_the_upload_is_removed_and_the_client_gets_503() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source()).await;
    let user = edge.register("unlucky").await;

    // The stream refuses new messages from now on (full, with discard-new).
    let admin = async_nats::jetstream::new(
        backends
            .nats
            .connect(sidechain_test_support::Identity::Admin)
            .await,
    );
    let mut stream = admin.get_stream("EVENTS").await.expect("stream");
    let mut config = stream.info().await.expect("info").config.clone();
    config.max_messages = stream.info().await.expect("info").state.messages as i64;
    config.discard = async_nats::jetstream::stream::DiscardPolicy::New;
    admin.update_stream(config).await.expect("stream capped");

    let file = wav(8_000, 1, 0.5);
    let response = upload(
        &edge,
        &user,
        multipart(&plugin_fields(), Some(("a.wav", &file))),
        None,
    )
    .await;
    assert_eq!(response.headers()["retry-after"], "1");
    let (status, error) = json(response).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{error}");
    assert_eq!(error["error"], "event_store_unavailable");

    // The object was stored first and removed again: nothing is listed in the bucket.
    let bucket = admin.get_object_store("audio").await.expect("bucket");
    let mut listed = bucket.list().await.expect("list");
    let mut live = 0;
    while let Some(object) = futures::StreamExt::next(&mut listed).await {
        if !object.expect("object info").deleted {
            live += 1;
        }
    }
    assert_eq!(live, 0, "the unrecorded upload's object is gone");
    let metrics = edge.metrics().await;
    assert!(
        metrics.contains("sidechain_audio_uploads_total{outcome=\"event_not_stored\"} 1"),
        "{metrics}"
    );
    edge.stop().await;
}
