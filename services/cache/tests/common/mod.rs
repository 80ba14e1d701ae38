//! A cache service against real NATS and Redis and the Gorse test double, fed by events
//! published straight to the stream.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use redis::AsyncCommands as _;
use sidechain_cache::Config;
use sidechain_config::Source;
use sidechain_events::events::event::Payload;
use sidechain_events::events::{Follow, Like, PostCreated, Unfollow};
use sidechain_events::rpc::{FeedKind, FeedPage, FeedReply, FeedRequest, feed_reply};
use sidechain_events::{EventId, NewEvent, PostId, UserId, subjects};
use sidechain_infra::nats::{self, NatsConfig, StreamConfig};
use sidechain_infra::service::Running;
use sidechain_test_support::{GorseDouble, NatsServer, RedisServer};
use tokio_util::sync::CancellationToken;

pub struct World {
    pub nats: NatsServer,
    pub redis: RedisServer,
    pub gorse: GorseDouble,
    pub client: async_nats::Client,
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
        let js = nats::jetstream(client.clone(), &config);
        nats::ensure_events_stream(&js, &StreamConfig::default())
            .await
            .expect("stream");
        Self {
            nats: nats_server,
            redis: RedisServer::start(),
            gorse: GorseDouble::start().await,
            client,
            js,
        }
    }

    pub fn source(&self) -> Source {
        self.nats
            .source(sidechain_test_support::Identity::Cache)
            .with(
                "REDIS_URL",
                self.redis.url_for(sidechain_test_support::Identity::Cache),
            )
            .with("GORSE_URL", self.gorse.url())
            .with("METRICS_PORT", "0")
            .with("BIND_ADDRESS", "127.0.0.1")
            .with("SHUTDOWN_TIMEOUT", "5s")
    }

    pub async fn start_service(&self, source: Source) -> Service {
        let config = Config::from_source(&source).expect("config");
        let shutdown = CancellationToken::new();
        let running = sidechain_cache::start(config, shutdown.clone())
            .await
            .expect("starts");
        let service = Service {
            admin: format!("http://{}", running.admin_addr),
            shutdown,
            running: Some(running),
        };
        service.wait_ready().await;
        service
    }

    pub async fn publish(&self, actor: UserId, payload: Payload) -> u64 {
        let event = NewEvent::new(
            EventId::new(),
            actor,
            &format!("user-{}", &actor.to_string()[..8]),
            payload,
        );
        nats::publish_event(&self.js, &event)
            .await
            .expect("published")
            .sequence
    }

    pub async fn post(&self, author: UserId, genres: &[&str]) -> PostId {
        let post = PostId::new();
        self.publish(
            author,
            Payload::PostCreated(PostCreated {
                post_id: post.to_string(),
                title: "loop".into(),
                audio_url: "https://cdn.example/a.wav".into(),
                bpm: 120.0,
                key: "C minor".into(),
                genres: genres.iter().map(|g| g.to_string()).collect(),
                duration_seconds: 8.0,
                ..Default::default()
            }),
        )
        .await;
        post
    }

    pub async fn follow(&self, follower: UserId, target: UserId) {
        self.publish(
            follower,
            Payload::Follow(Follow {
                target_user_id: target.to_string(),
            }),
        )
        .await;
    }

    pub async fn unfollow(&self, follower: UserId, target: UserId) {
        self.publish(
            follower,
            Payload::Unfollow(Unfollow {
                target_user_id: target.to_string(),
            }),
        )
        .await;
    }

    pub async fn like(&self, user: UserId, post: PostId) {
        self.publish(
            user,
            Payload::Like(Like {
                post_id: post.to_string(),
                emoji: String::new(),
            }),
        )
        .await;
    }

    /// Empties Redis, as an operator's FLUSHALL or a lost Redis without persistence would.
    pub async fn wipe_redis(&self) {
        let _: () = redis::cmd("FLUSHALL")
            .query_async(&mut self.redis().await)
            .await
            .expect("flush");
    }

    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis.url())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis")
    }

    /// Waits until the read models include every event published so far.
    pub async fn settled(&self) {
        let mut stream = self.js.get_stream("EVENTS").await.expect("stream");
        let last = stream.info().await.expect("info").state.last_sequence;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let applied: Option<u64> = self
                .redis()
                .await
                .get("readmodel:applied_seq")
                .await
                .unwrap_or(None);
            if applied.is_some_and(|a| a >= last) {
                // Give the invalidation broadcast a moment to land.
                tokio::time::sleep(Duration::from_millis(30)).await;
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "read models never caught up to {last} (at {applied:?})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn feed(
        &self,
        kind: FeedKind,
        viewer: Option<UserId>,
        target: Option<UserId>,
        limit: u32,
        offset: u32,
    ) -> FeedPage {
        let request = FeedRequest {
            kind: kind as i32,
            viewer_user_id: viewer.map(|v| v.to_string()).unwrap_or_default(),
            target_user_id: target.map(|t| t.to_string()).unwrap_or_default(),
            limit,
            offset,
            cursor: String::new(),
        };
        self.feed_request(&request).await
    }

    /// Any feed request; panics on an error reply.
    pub async fn feed_request(&self, request: &FeedRequest) -> FeedPage {
        let kind = FeedKind::try_from(request.kind).expect("kind");
        let reply: FeedReply = nats::request(
            &self.client,
            &subjects::feed_subject(kind),
            request,
            Duration::from_secs(5),
        )
        .await
        .expect("feed reply");
        match reply.result {
            Some(feed_reply::Result::Page(page)) => page,
            other => panic!("feed error: {other:?}"),
        }
    }
}

pub fn ids(page: &FeedPage) -> Vec<String> {
    page.items
        .iter()
        .map(|item| item.post.as_ref().expect("post").id.clone())
        .collect()
}

pub struct Service {
    pub admin: String,
    pub shutdown: CancellationToken,
    pub running: Option<Running>,
}

impl Service {
    pub async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !reqwest::get(format!("{}/health/ready", self.admin))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(tokio::time::Instant::now() < deadline, "cache never ready");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

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
