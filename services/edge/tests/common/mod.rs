//! A running edge against real NATS and Redis servers started for the test.

#![allow(dead_code, unreachable_pub, unused_imports)]

use std::time::Duration;

use reqwest::StatusCode;
pub use sidechain_api_client::{ApiClient, Feed, Login, NewPost, Page, Play, Registration};
use sidechain_config::Source;
use sidechain_edge::EdgeConfig;
use sidechain_infra::service::Running;
use sidechain_test_support::{NatsServer, RedisServer};
pub use sidechain_test_support::{Reply, send};
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "test-secret-test-secret-test-secret!";

/// Servers shared by one or more edge instances.
pub struct Backends {
    pub nats: NatsServer,
    pub redis: RedisServer,
}

impl Backends {
    pub fn start() -> Self {
        sidechain_test_support::init_logging();
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        Self {
            nats: NatsServer::start(),
            redis: RedisServer::start(),
        }
    }

    pub fn source(&self) -> Source {
        self.nats
            .source(sidechain_test_support::Identity::Edge)
            .with(
                "REDIS_URL",
                self.redis.url_for(sidechain_test_support::Identity::Edge),
            )
            .with("JWT_SECRET", SECRET)
            .with("PORT", "0")
            .with("METRICS_PORT", "0")
            .with("BIND_ADDRESS", "127.0.0.1")
            .with("CACHE_REQUEST_TIMEOUT", "300ms")
            .with("SHUTDOWN_TIMEOUT", "5s")
    }
}

/// One edge instance.
pub struct Edge {
    pub base: String,
    pub admin: String,
    pub shutdown: CancellationToken,
    pub running: Option<Running>,
    /// The API client of this instance.
    pub api: ApiClient,
    /// For the admin port (health, metrics), which is not the client API.
    pub admin_http: reqwest::Client,
}

impl Edge {
    pub async fn start(source: Source) -> Self {
        let config = EdgeConfig::from_source(&source).expect("test config");
        let shutdown = CancellationToken::new();
        let running = sidechain_edge::start(config, shutdown.clone())
            .await
            .expect("edge starts");
        let base = format!("http://{}", running.api_addr.expect("api addr"));
        let edge = Self {
            api: ApiClient::new(&base),
            base,
            admin: format!("http://{}", running.admin_addr),
            shutdown,
            running: Some(running),
            admin_http: reqwest::Client::new(),
        };
        edge.wait_ready().await;
        edge
    }

    pub async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let ready = self
                .admin_http
                .get(format!("{}/health/ready", self.admin))
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK);
            if ready {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "edge never became ready"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(running) = self.running.take() {
            running.wait().await.expect("clean stop");
        }
    }

    /// Registers `username` (password `correct horse battery`).
    pub async fn register(&self, username: &str) -> TestUser {
        let session = sidechain_test_support::register(&self.api, username).await;
        TestUser {
            id: session.user.id,
            token: session.token,
            username: username.to_owned(),
        }
    }

    pub async fn metrics(&self) -> String {
        self.admin_http
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }
}

#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub token: String,
    pub username: String,
}

/// Every event in the stream, as (subject, decoded event), in stream order.
pub async fn stream_events(nats: &NatsServer) -> Vec<(String, sidechain_events::events::Event)> {
    use prost::Message as _;
    sidechain_test_support::stream_messages(nats)
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

pub fn subjects(events: &[(String, sidechain_events::events::Event)]) -> Vec<&str> {
    events.iter().map(|(s, _)| s.as_str()).collect()
}
