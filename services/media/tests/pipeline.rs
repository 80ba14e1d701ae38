//! The media service against real NATS (object store, stream) and Redis: an upload recorded as
//! the edge records it is decoded and measured, its waveform stored next to it, and
//! `audio_processed` published with the measured values; corrupt, truncated and missing files
//! become `audio_rejected` with a reason, and nothing crashes.

use std::time::Duration;

use prost::Message as _;
use sidechain_events::events::event::Payload;
use sidechain_events::events::{AudioUploaded, Event};
use sidechain_events::{EventId, NewEvent, PostId, UserId};
use sidechain_infra::media_store::{MediaStore, NatsMediaStore};
use sidechain_infra::nats::{self, NatsConfig};
use sidechain_test_support::{Identity, NatsServer, RedisServer, stream_messages};
use tokio::io::AsyncReadExt as _;
use tokio_util::sync::CancellationToken;

fn wav(rate: u32, channels: u16, seconds: f32, amplitude: f32) -> Vec<u8> {
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
            let sample = (f32::sin(i as f32 / rate as f32 * 440.0 * std::f32::consts::TAU)
                * amplitude
                * f32::from(i16::MAX)) as i16;
            for _ in 0..channels {
                writer.write_sample(sample).expect("sample");
            }
        }
        writer.finalize().expect("finalize");
    }
    out.into_inner()
}

struct World {
    nats: NatsServer,
    _redis: RedisServer,
    store: NatsMediaStore,
    js: async_nats::jetstream::Context,
    shutdown: CancellationToken,
    running: Option<sidechain_infra::service::Running>,
}

impl World {
    async fn start() -> Self {
        sidechain_test_support::init_logging();
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let nats_server = NatsServer::start();
        let redis = RedisServer::start();
        // The edge's identity stores uploads and records them.
        let edge = NatsConfig::from_source(&nats_server.source(Identity::Edge)).expect("config");
        let client = nats::connect("edge", &edge).await.expect("connect");
        let js = nats::jetstream(client, &edge);
        let store = NatsMediaStore::new(js.clone(), "audio");
        let source = nats_server
            .source(Identity::Media)
            .with("REDIS_URL", redis.url_for(Identity::Media))
            .with("METRICS_PORT", "0")
            .with("BIND_ADDRESS", "127.0.0.1")
            .with("MEDIA_RETRY_DELAY", "100ms")
            .with("MEDIA_MAX_ATTEMPTS", "2");
        let config = sidechain_media::Config::from_source(&source).expect("config");
        let shutdown = CancellationToken::new();
        let running = sidechain_media::start(config, shutdown.clone())
            .await
            .expect("media starts");
        Self {
            nats: nats_server,
            _redis: redis,
            store,
            js,
            shutdown,
            running: Some(running),
        }
    }

    /// Stores `bytes` (unless `None`) and records the upload as the edge does; returns the post id.
    async fn upload(&self, bytes: Option<&[u8]>, format: &str) -> String {
        let post_id = PostId::new().to_string();
        if let Some(mut bytes) = bytes {
            self.store
                .put(&post_id, "audio/wav", &mut bytes)
                .await
                .expect("stored");
        }
        let event = NewEvent::new(
            EventId::new(),
            UserId::new(),
            "uploader",
            Payload::AudioUploaded(AudioUploaded {
                post_id: post_id.clone(),
                object_key: post_id.clone(),
                format: format.to_owned(),
                audio_url: format!("https://api.example/api/v1/audio/{post_id}"),
                claimed_duration_seconds: 99.0,
                ..AudioUploaded::default()
            }),
        );
        nats::publish_event(&self.js, &event)
            .await
            .expect("recorded");
        post_id
    }

    /// Waits for the media service's verdict on `post_id`.
    async fn verdict(&self, post_id: &str) -> Payload {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            for (_, payload, _) in stream_messages(&self.nats).await {
                let event = Event::decode(payload).expect("event");
                match event.payload {
                    Some(Payload::AudioProcessed(ref p)) if p.post_id == post_id => {
                        return event.payload.expect("payload");
                    }
                    Some(Payload::AudioRejected(ref r)) if r.post_id == post_id => {
                        return event.payload.expect("payload");
                    }
                    _ => {}
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no verdict on {post_id}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(mut self) {
        self.halt().await;
    }

    async fn halt(&mut self) {
        self.shutdown.cancel();
        if let Some(running) = self.running.take() {
            running.wait().await.expect("clean stop");
        }
    }

    /// A fresh media service on the same servers.
    async fn restart(mut self) -> Self {
        self.halt().await;
        let source = self
            .nats
            .source(Identity::Media)
            .with("REDIS_URL", self._redis.url_for(Identity::Media))
            .with("METRICS_PORT", "0")
            .with("BIND_ADDRESS", "127.0.0.1");
        let config = sidechain_media::Config::from_source(&source).expect("config");
        self.shutdown = CancellationToken::new();
        self.running = Some(
            sidechain_media::start(config, self.shutdown.clone())
                .await
                .expect("media restarts"),
        );
        self
    }
}

#[tokio::test]
async fn wav_files_are_measured_and_get_a_waveform() {
    let world = World::start().await;
    for (rate, channels, seconds) in [(44_100, 2, 1.5), (48_000, 1, 0.75), (22_050, 2, 3.0)] {
        let file = wav(rate, channels, seconds, 0.5);
        let post_id = world.upload(Some(&file), "wav").await;
        let Payload::AudioProcessed(processed) = world.verdict(&post_id).await else {
            panic!("{rate} Hz × {channels} rejected");
        };
        assert!(
            (processed.duration_seconds - f64::from(seconds)).abs() < 0.001,
            "measured {} s, the claim (99 s) must not win",
            processed.duration_seconds
        );
        assert_eq!(processed.sample_rate, rate as i32);
        assert_eq!(processed.channels, i32::from(channels));
        // A sine at half scale peaks at about -6 dBFS and measures about -9 LUFS (mono: -12).
        assert!(
            (processed.peak_dbfs + 6.02).abs() < 0.1,
            "peak {}",
            processed.peak_dbfs
        );
        assert!(
            processed.loudness_lufs < -3.0 && processed.loudness_lufs > -20.0,
            "loudness {}",
            processed.loudness_lufs
        );
        assert_eq!(
            processed.waveform_url,
            format!("https://api.example/api/v1/audio/{post_id}/waveform.json")
        );
        let (meta, mut reader) = world
            .store
            .get(&format!("{post_id}.waveform.json"), 0)
            .await
            .expect("waveform stored");
        assert_eq!(meta.content_type, "application/json");
        let mut json = Vec::new();
        reader.read_to_end(&mut json).await.expect("read");
        let waveform: serde_json::Value = serde_json::from_slice(&json).expect("json");
        let peaks = waveform["peaks"].as_array().expect("peaks");
        assert_eq!(peaks.len(), 800);
        assert!(
            peaks
                .iter()
                .all(|p| (p.as_f64().expect("number") - 0.5).abs() < 0.01),
            "a steady sine has flat peaks"
        );
    }
    world.stop().await;
}

#[tokio::test]
async fn unusable_files_are_rejected_with_a_reason() {
    let world = World::start().await;
    let file = wav(44_100, 2, 1.0, 0.5);

    let truncated = world.upload(Some(&file[..file.len() / 2]), "wav").await;
    let mut header_then_junk = file[..44].to_vec();
    header_then_junk.extend(std::iter::repeat_n(0xA5_u8, 10));
    let cut_in_header = world.upload(Some(&file[..20]), "wav").await;
    let junk = world.upload(Some(&header_then_junk), "wav").await;
    let missing = world.upload(None, "wav").await;

    for (post_id, expected) in [
        (&truncated, "truncated"),
        (&cut_in_header, "not decodable"),
        (&junk, "truncated"),
        (&missing, "not in the media store"),
    ] {
        let Payload::AudioRejected(rejected) = world.verdict(post_id).await else {
            panic!("{expected}: processed");
        };
        assert!(
            rejected.reason.contains(expected),
            "{expected}: {}",
            rejected.reason
        );
    }
    // Still working after all that.
    let good = world.upload(Some(&file), "wav").await;
    assert!(matches!(
        world.verdict(&good).await,
        Payload::AudioProcessed(_)
    ));
    world.stop().await;
}

#[tokio::test]
async fn flac_and_ogg_fixtures_are_measured() {
    // 1 s of a 440 Hz sine at half scale, 22.05 kHz stereo, made with `flac` and `oggenc` from
    // a WAV (services/media/tests/fixtures).
    let world = World::start().await;
    for (bytes, format, tolerance) in [
        (
            &include_bytes!("fixtures/sine-22050-stereo-1s.flac")[..],
            "flac",
            0.001,
        ),
        (
            &include_bytes!("fixtures/sine-22050-stereo-1s.ogg")[..],
            "ogg",
            0.001,
        ),
    ] {
        let post_id = world.upload(Some(bytes), format).await;
        let Payload::AudioProcessed(processed) = world.verdict(&post_id).await else {
            panic!("{format} rejected");
        };
        assert!(
            (processed.duration_seconds - 1.0).abs() < tolerance,
            "{format}: {}",
            processed.duration_seconds
        );
        assert_eq!(processed.sample_rate, 22_050, "{format}");
        assert_eq!(processed.channels, 2, "{format}");
        assert!(
            (processed.peak_dbfs + 6.0).abs() < 1.0,
            "{format}: peak {}",
            processed.peak_dbfs
        );
    }
    world.stop().await;
}

#[tokio::test]
async fn a_redelivered_upload_is_recorded_once() {
    let world = World::start().await;
    let file = wav(16_000, 1, 0.5, 0.25);
    let post_id = world.upload(Some(&file), "wav").await;
    assert!(matches!(
        world.verdict(&post_id).await,
        Payload::AudioProcessed(_)
    ));

    // As if the acknowledgement had been lost: the consumer starts over from the first upload,
    // in a fresh instance.
    let admin = world_admin_js(&world).await;
    admin
        .get_stream("EVENTS")
        .await
        .expect("stream")
        .delete_consumer(sidechain_events::subjects::MEDIA_CONSUMER)
        .await
        .expect("consumer deleted");
    let again = World::restart(world).await;
    let second = again.upload(Some(&file), "wav").await;
    assert!(matches!(
        again.verdict(&second).await,
        Payload::AudioProcessed(_)
    ));
    let processed_for_first = stream_messages(&again.nats)
        .await
        .into_iter()
        .filter(|(_, payload, _)| {
            matches!(
                Event::decode(payload.clone()).expect("event").payload,
                Some(Payload::AudioProcessed(ref p)) if p.post_id == post_id
            )
        })
        .count();
    assert_eq!(
        processed_for_first, 1,
        "reprocessing stored its result once"
    );
    again.stop().await;
}

async fn world_admin_js(world: &World) -> async_nats::jetstream::Context {
    async_nats::jetstream::new(world.nats.connect(Identity::Admin).await)
}
