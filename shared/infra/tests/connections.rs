//! The connection helpers against real servers: streams are created idempotently, duplicate
//! publishes are stored once, and clients survive their server being killed and restarted.

use std::time::Duration;

use sidechain_config::Source;
use sidechain_events::events::{Like, event::Payload};
use sidechain_events::{EventId, NewEvent, PostId, UserId};
use sidechain_infra::nats::{self, NatsConfig, StreamConfig};
use sidechain_infra::redis::{self as infra_redis, RedisConfig};
use sidechain_test_support::{Identity, NatsServer, RedisServer};

fn nats_config(server: &NatsServer, identity: Identity) -> NatsConfig {
    NatsConfig::from_source(&server.source(identity)).expect("config")
}

async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn like() -> NewEvent {
    NewEvent::new(
        EventId::new(),
        UserId::new(),
        "tester",
        Payload::Like(Like {
            post_id: PostId::new().to_string(),
            emoji: String::new(),
        }),
    )
}

#[tokio::test]
async fn the_stream_is_created_idempotently_and_duplicates_are_stored_once() {
    let server = NatsServer::start();
    let admin_config = nats_config(&server, Identity::Admin);
    let admin = nats::connect("admin", &admin_config)
        .await
        .expect("connect");
    let admin_js = nats::jetstream(admin, &admin_config);
    let settings = StreamConfig::default();
    nats::ensure_events_stream(&admin_js, &settings)
        .await
        .expect("provisioning created it; a second run is a no-op");
    nats::ensure_events_stream(&admin_js, &settings)
        .await
        .expect("and a third");

    let config = nats_config(&server, Identity::Edge);
    let client = nats::connect("edge", &config).await.expect("connect");
    wait_for("connection", || nats::is_connected(&client)).await;
    let js = nats::jetstream(client, &config);

    let event = like();
    let first = nats::publish_event(&js, &event).await.expect("stored");
    let again = nats::publish_event(&js, &event)
        .await
        .expect("deduplicated");
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(again.sequence, first.sequence);

    let mut stream = js.get_stream("EVENTS").await.expect("stream");
    assert_eq!(stream.info().await.expect("info").state.messages, 1);
}

#[tokio::test]
async fn a_client_started_before_nats_connects_when_it_appears_and_after_a_crash() {
    let mut server = NatsServer::start();
    server.kill();
    let config = nats_config(&server, Identity::Admin);
    let client = nats::connect("admin", &config)
        .await
        .expect("connect returns at once");
    assert!(!nats::is_connected(&client));

    server.restart();
    wait_for("first connection", || nats::is_connected(&client)).await;

    server.kill();
    wait_for("disconnect noticed", || !nats::is_connected(&client)).await;
    let js = nats::jetstream(client.clone(), &config);
    let refused = nats::publish_event(&js, &like()).await;
    assert!(
        matches!(refused, Err(nats::PublishError::Unavailable(_))),
        "{refused:?}"
    );

    server.restart();
    wait_for("reconnection", || nats::is_connected(&client)).await;
    nats::ensure_events_stream(&js, &StreamConfig::default())
        .await
        .expect("usable again");
}

#[tokio::test]
async fn redis_readiness_follows_the_server() {
    let mut server = RedisServer::start();
    let config = RedisConfig::from_source(&Source::default().with("REDIS_URL", server.url()))
        .expect("config");
    let conn = infra_redis::connect(&config).expect("lazy handle");
    let check = infra_redis::readiness_check(conn);
    assert_eq!(check().await, Ok(()));

    server.kill();
    assert!(check().await.is_err());

    server.restart();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while check().await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "redis never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
