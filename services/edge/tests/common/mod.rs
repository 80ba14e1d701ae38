//! A running edge against real NATS and Redis servers started for the test.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sidechain_config::Source;
use sidechain_edge::EdgeConfig;
use sidechain_infra::service::Running;
pub use sidechain_test_support::Reply;
use sidechain_test_support::{NatsServer, RedisServer};
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
        Source::default()
            .with("NATS_URL", self.nats.url())
            .with("REDIS_URL", self.redis.url())
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
    pub client: reqwest::Client,
}

impl Edge {
    pub async fn start(source: Source) -> Self {
        let config = EdgeConfig::from_source(&source).expect("test config");
        let shutdown = CancellationToken::new();
        let running = sidechain_edge::start(config, shutdown.clone())
            .await
            .expect("edge starts");
        let edge = Self {
            base: format!("http://{}", running.api_addr.expect("api addr")),
            admin: format!("http://{}", running.admin_addr),
            shutdown,
            running: Some(running),
            client: reqwest::Client::new(),
        };
        edge.wait_ready().await;
        edge
    }

    pub async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let ready = self
                .client
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

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        sidechain_test_support::call(&self.client, &self.base, method, path, token, body).await
    }

    pub async fn register(&self, username: &str) -> TestUser {
        let reply = self
            .call(
                Method::POST,
                "/api/v1/auth/register",
                None,
                Some(json!({
                    "email": format!("{username}@example.com"),
                    "username": username,
                    "password": "correct horse battery",
                })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        TestUser {
            id: reply.body["auth"]["user"]["id"]
                .as_str()
                .expect("id")
                .to_owned(),
            token: reply.body["auth"]["token"]
                .as_str()
                .expect("token")
                .to_owned(),
            username: username.to_owned(),
        }
    }

    pub async fn metrics(&self) -> String {
        self.client
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
pub async fn stream_events(nats_url: &str) -> Vec<(String, sidechain_events::events::Event)> {
    use prost::Message as _;
    sidechain_test_support::stream_messages(nats_url)
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
