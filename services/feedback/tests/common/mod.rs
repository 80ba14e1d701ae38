//! A feedback service against real NATS and Redis and the Gorse test double.

#![allow(dead_code, unreachable_pub)]

use redis::AsyncCommands as _;
use sidechain_config::Source;
use sidechain_events::events::{Like, event::Payload};
use sidechain_events::{EventId, NewEvent, PostId, UserId};
use sidechain_feedback::Config;
use sidechain_infra::nats::{self, NatsConfig, StreamConfig};
use sidechain_infra::service::Running;
use sidechain_test_support::{GorseDouble, NatsServer, RedisServer};
use tokio_util::sync::CancellationToken;

pub struct World {
    pub nats: NatsServer,
    pub redis: RedisServer,
    pub gorse: GorseDouble,
    pub js: async_nats::jetstream::Context,
}

impl World {
    pub async fn start() -> Self {
        sidechain_test_support::init_logging();
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let nats_server = NatsServer::start();
        let config =
            NatsConfig::from_source(&nats_server.source(sidechain_test_support::Identity::Admin))
                .expect("nats config");
        let client = nats::connect("test", &config).await.expect("connect");
        let js = nats::jetstream(client, &config);
        nats::ensure_events_stream(&js, &StreamConfig::default())
            .await
            .expect("stream");
        Self {
            nats: nats_server,
            redis: RedisServer::start(),
            gorse: {
                // As compose/gorse/config.toml: feedback on an unknown item is dropped.
                let gorse = GorseDouble::start().await;
                gorse.set_auto_insert(true, false);
                gorse
            },
            js,
        }
    }

    /// Settings for a fast test: short timeouts and backoff.
    pub fn source(&self) -> Source {
        self.nats
            .source(sidechain_test_support::Identity::Feedback)
            .with(
                "REDIS_URL",
                self.redis
                    .url_for(sidechain_test_support::Identity::Feedback),
            )
            .with("GORSE_URL", self.gorse.url())
            .with("METRICS_PORT", "0")
            .with("BIND_ADDRESS", "127.0.0.1")
            .with("GORSE_BATCH_TIMEOUT", "1s")
            .with("GORSE_RETRY_BASE_DELAY", "20ms")
            .with("GORSE_REQUEST_TIMEOUT", "1s")
            .with("GORSE_HEALTH_INTERVAL", "200ms")
            .with("GORSE_DLQ_FLUSH_INTERVAL", "1s")
            .with("GORSE_BREAKER_COOLDOWN", "1s")
            .with("FEEDBACK_ACK_WAIT", "2s")
            .with("SHUTDOWN_TIMEOUT", "10s")
    }

    pub async fn start_service(&self, source: Source) -> Service {
        let config = Config::from_source(&source).expect("config");
        let shutdown = CancellationToken::new();
        let running = sidechain_feedback::start(config, shutdown.clone())
            .await
            .expect("starts");
        Service {
            admin: format!("http://{}", running.admin_addr),
            shutdown,
            running: Some(running),
        }
    }

    /// Publishes `n` likes by distinct users on one post; returns the user ids.
    pub async fn publish_likes(&self, n: usize, post: PostId) -> Vec<String> {
        let mut users = Vec::with_capacity(n);
        for _ in 0..n {
            let user = UserId::new();
            let event = NewEvent::new(
                EventId::new(),
                user,
                "fan",
                Payload::Like(Like {
                    post_id: post.to_string(),
                    emoji: String::new(),
                }),
            );
            nats::publish_event(&self.js, &event)
                .await
                .expect("published");
            users.push(user.to_string());
        }
        users
    }

    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis.url())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis")
    }

    pub async fn dead_letter_len(&self) -> u64 {
        self.redis()
            .await
            .llen("gorse_failed_feedback")
            .await
            .expect("llen")
    }

    /// (pending, ack pending) of the feedback consumer, once it exists.
    pub async fn consumer_backlog(&self) -> Option<(u64, usize)> {
        let mut consumer: async_nats::jetstream::consumer::PullConsumer = self
            .js
            .get_consumer_from_stream("feedback", "EVENTS")
            .await
            .ok()?;
        let info = consumer.info().await.ok()?;
        Some((info.num_pending, info.num_ack_pending))
    }
}

pub struct Service {
    pub admin: String,
    pub shutdown: CancellationToken,
    pub running: Option<Running>,
}

impl Service {
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(running) = self.running.take() {
            running.wait().await.expect("clean stop");
        }
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.admin))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }
}
