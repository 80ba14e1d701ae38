//! The whole system in one process: NATS, Redis and the Gorse test double started for the
//! test, and the edge, cache and feedback services started with `start` on free ports, as
//! `just up` would run them (with short batch timeouts so tests are quick).

pub mod chaos;
pub mod gorse_smoke;

use std::time::Duration;

use sidechain_api_client::{ApiClient, NewPost};
use sidechain_config::Source;
use sidechain_infra::service::Running;
use sidechain_test_support::{GorseDouble, Identity, NatsServer, RedisServer};
use tokio_util::sync::CancellationToken;

/// JWT key of the test system.
pub const SECRET: &str = "system-test-secret-system-test-secret";

/// Servers and services.
#[derive(Debug)]
pub struct System {
    /// NATS with JetStream.
    pub nats: NatsServer,
    /// Redis.
    pub redis: RedisServer,
    /// The Gorse test double.
    pub gorse: GorseDouble,
    /// The edge API.
    pub api: ApiClient,
    /// Admin (metrics/health) URLs: edge, feedback, cache, media.
    pub admin: [String; 4],
    source: Source,
    shutdown: CancellationToken,
    running: Vec<Running>,
    /// For the admin ports (health, metrics), which are not the client API.
    http: reqwest::Client,
}

/// A registered user.
#[derive(Debug, Clone)]
pub struct User {
    /// Id.
    pub id: String,
    /// Bearer token.
    pub token: String,
}

impl System {
    /// Starts everything with the given extra settings; returns once every service is ready.
    pub async fn start(extra: &[(&str, &str)]) -> Self {
        sidechain_test_support::init_logging();
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let (nats, redis, gorse) = (
            NatsServer::start(),
            RedisServer::start(),
            GorseDouble::start().await,
        );
        let mut source = Source::default()
            .with("NATS_URL", nats.url())
            .with("GORSE_URL", gorse.url())
            .with("JWT_SECRET", SECRET)
            .with("PORT", "0")
            .with("METRICS_PORT", "0")
            .with("BIND_ADDRESS", "127.0.0.1")
            .with("GORSE_BATCH_TIMEOUT", "200ms")
            .with("GORSE_RETRY_BASE_DELAY", "20ms")
            .with("GORSE_HEALTH_INTERVAL", "200ms")
            .with("SHUTDOWN_TIMEOUT", "5s");
        for (key, value) in extra {
            source = source.with(*key, *value);
        }
        let shutdown = CancellationToken::new();
        let as_identity = |identity: Identity| {
            source
                .clone()
                .with(
                    "NATS_NKEY_FILE",
                    nats.seed_file(identity).display().to_string(),
                )
                .with("REDIS_URL", redis.url_for(identity))
        };
        let edge = sidechain_edge::start(
            sidechain_edge::EdgeConfig::from_source(&as_identity(Identity::Edge))
                .expect("edge config"),
            shutdown.clone(),
        )
        .await
        .expect("edge starts");
        let feedback = sidechain_feedback::start(
            sidechain_feedback::Config::from_source(&as_identity(Identity::Feedback))
                .expect("feedback config"),
            shutdown.clone(),
        )
        .await
        .expect("feedback starts");
        let cache = sidechain_cache::start(
            sidechain_cache::Config::from_source(&as_identity(Identity::Cache))
                .expect("cache config"),
            shutdown.clone(),
        )
        .await
        .expect("cache starts");
        let media = sidechain_media::start(
            sidechain_media::Config::from_source(&as_identity(Identity::Media))
                .expect("media config"),
            shutdown.clone(),
        )
        .await
        .expect("media starts");
        let system = Self {
            api: ApiClient::new(format!("http://{}", edge.api_addr.expect("api"))),
            admin: [&edge, &feedback, &cache, &media].map(|r| format!("http://{}", r.admin_addr)),
            nats,
            redis,
            gorse,
            source,
            shutdown,
            running: vec![edge, feedback, cache, media],
            http: reqwest::Client::new(),
        };
        for admin in &system.admin {
            eventually(
                &format!("{admin} ready"),
                Duration::from_secs(20),
                || async {
                    system
                        .http
                        .get(format!("{admin}/health/ready"))
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success())
                },
            )
            .await;
        }
        system
    }

    /// Starts one more edge instance (fresh memory, same servers); returns its API.
    pub async fn another_edge(&mut self) -> ApiClient {
        let edge = sidechain_edge::start(
            sidechain_edge::EdgeConfig::from_source(
                &self
                    .source
                    .clone()
                    .with(
                        "NATS_NKEY_FILE",
                        self.nats.seed_file(Identity::Edge).display().to_string(),
                    )
                    .with("REDIS_URL", self.redis.url_for(Identity::Edge)),
            )
            .expect("edge config"),
            self.shutdown.clone(),
        )
        .await
        .expect("edge starts");
        let api = ApiClient::new(format!("http://{}", edge.api_addr.expect("api")));
        let admin = format!("http://{}", edge.admin_addr);
        self.running.push(edge);
        eventually("the new edge is ready", Duration::from_secs(20), || async {
            self.http
                .get(format!("{admin}/health/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        api
    }

    /// Stops every service and waits for a clean exit.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for running in self.running {
            running.wait().await.expect("clean stop");
        }
    }

    /// Registers `username` (password `correct horse battery`).
    pub async fn register(&self, username: &str) -> User {
        let session = sidechain_test_support::register(&self.api, username).await;
        User {
            id: session.user.id,
            token: session.token,
        }
    }

    /// Shares a loop as `user`; returns its id.
    pub async fn post(&self, user: &User, genre: &str) -> String {
        let post = NewPost {
            title: Some("Night drive".to_owned()),
            audio_url: "https://cdn.example/loop.wav".to_owned(),
            waveform_url: None,
            bpm: 124.0,
            key: "A minor".to_owned(),
            genres: vec![genre.to_owned()],
            duration_seconds: 8.0,
            daw: None,
        };
        self.api
            .create_post(&post)
            .bearer(&user.token)
            .fetch()
            .await
            .expect("posted")
            .id
    }

    /// The text of a service's `/metrics` (0 edge, 1 feedback, 2 cache, 3 media).
    pub async fn metrics(&self, service: usize) -> String {
        self.http
            .get(format!("{}/metrics", self.admin[service]))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    /// Every event in the stream as (subject, event), in order.
    pub async fn events(&self) -> Vec<(String, sidechain_events::events::Event)> {
        use prost::Message as _;
        sidechain_test_support::stream_messages(&self.nats)
            .await
            .into_iter()
            .map(|(subject, payload, _)| {
                (
                    subject,
                    sidechain_events::events::Event::decode(payload).expect("decodes"),
                )
            })
            .collect()
    }
}

pub use sidechain_api_client::{Feed, NewComment, Play};
pub use sidechain_test_support::{Reply, eventually, send};
