//! Events to Gorse through real NATS and Redis and the Gorse test double.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::World;
use sidechain_events::PostId;
use sidechain_test_support::{eventually, metric};

#[tokio::test]
async fn two_hundred_fifty_events_go_in_three_requests_of_at_most_a_hundred() {
    let world = World::start().await;
    let post = PostId::new();
    let users = world.publish_likes(250, post).await;
    let service = world.start_service(world.source()).await;

    eventually("250 rows in Gorse", Duration::from_secs(20), || async {
        world.gorse.record().feedback.len() == 250
    })
    .await;
    let record = world.gorse.record();
    assert_eq!(record.feedback_batches(), 3, "{:?}", record.requests);
    assert_eq!(record.feedback_received.len(), 250, "each event sent once");
    let sent: BTreeSet<String> = record
        .feedback
        .keys()
        .map(|(_, user, _)| user.clone())
        .collect();
    assert_eq!(sent, users.into_iter().collect());
    service.stop().await;
}

// storage/data/sql.go (v0.5.11) `BatchInsertFeedback`: with `auto_insert_item = false` (ours)
// Gorse drops feedback on an item it lacks and still answers `RowAffected: n`.
#[tokio::test]
async fn a_like_on_a_post_from_before_the_feedback_service_lands_and_keeps_its_metadata() {
    let world = World::start().await;
    // One post reached Gorse before this service existed; one never reached it at all.
    let (old, unknown) = (PostId::new(), PostId::new());
    let real = serde_json::json!({"ItemId": old.to_string(), "IsHidden": false,
        "Categories": ["house"], "Labels": {"genres": ["house"]}, "Timestamp": "2020-01-01T00:00:00Z"});
    reqwest::Client::new()
        .post(format!("{}/api/items", world.gorse.url()))
        .json(std::slice::from_ref(&real))
        .send()
        .await
        .expect("seed")
        .error_for_status()
        .expect("seeded");
    let mut likers = world.publish_likes(2, old).await;
    likers.extend(world.publish_likes(2, unknown).await);
    let service = world.start_service(world.source()).await;

    eventually("every like stored", Duration::from_secs(10), || async {
        world.gorse.record().feedback.len() == 4
    })
    .await;
    let record = world.gorse.record();
    assert_eq!(record.items[&old.to_string()], real, "metadata untouched");
    let placeholder = &record.items[&unknown.to_string()];
    assert_eq!(placeholder["IsHidden"], true, "never recommended blind");
    let stored: BTreeSet<String> = record.feedback.keys().map(|(_, u, _)| u.clone()).collect();
    assert_eq!(stored, likers.into_iter().collect());
    let metrics = service.metrics().await;
    assert_eq!(
        sidechain_test_support::metric(&metrics, "sidechain_gorse_placeholder_items_total"),
        Some(1.0),
        "one placeholder, for the post Gorse never had: {metrics}"
    );
    service.stop().await;
}

#[tokio::test]
async fn a_small_batch_goes_once_the_timeout_passes() {
    let world = World::start().await;
    let service = world
        .start_service(world.source().with("GORSE_BATCH_TIMEOUT", "1500ms"))
        .await;
    eventually("consumer ready", Duration::from_secs(10), || async {
        reqwest::get(format!("{}/health/ready", service.admin))
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    let started = Instant::now();
    world.publish_likes(7, PostId::new()).await;
    eventually("7 rows in Gorse", Duration::from_secs(10), || async {
        world.gorse.record().feedback.len() == 7
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "sent too early: {:?}",
        started.elapsed()
    );
    assert_eq!(world.gorse.record().feedback_batches(), 1);
    service.stop().await;
}

#[tokio::test]
async fn gorse_failing_twice_then_recovering_gets_the_batch_once() {
    let world = World::start().await;
    world.gorse.fail_next(2, 503);
    world.publish_likes(5, PostId::new()).await;
    let service = world
        .start_service(world.source().with("GORSE_HEALTH_INTERVAL", "1h"))
        .await;
    eventually("5 rows in Gorse", Duration::from_secs(10), || async {
        world.gorse.record().feedback.len() == 5
    })
    .await;
    let record = world.gorse.record();
    assert_eq!(record.feedback_received.len(), 5, "delivered once");
    let lookups = record
        .requests
        .iter()
        .filter(|r| r.path.starts_with("/api/item/"))
        .count();
    assert_eq!(lookups, 3, "two failed attempts, one success");
    assert_eq!(record.feedback_batches(), 1);
    assert_eq!(world.dead_letter_len().await, 0);
    let metrics = service.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            // The first call of the batch: the lookup of the never-created post.
            "sidechain_gorse_retries_total{endpoint=\"/api/item/{id}\"}"
        ),
        Some(2.0)
    );
    service.stop().await;
}

#[tokio::test]
async fn with_gorse_down_batches_wait_in_the_dead_letter_list_and_drain_exactly_once() {
    let world = World::start().await;
    world.gorse.go_away();
    let service = world
        .start_service(world.source().with("GORSE_BATCH_SIZE", "10"))
        .await;
    let users = world.publish_likes(30, PostId::new()).await;

    eventually(
        "all 30 events acknowledged into the list",
        Duration::from_secs(20),
        || async {
            world.consumer_backlog().await == Some((0, 0)) && world.dead_letter_len().await >= 3
        },
    )
    .await;
    assert!(world.gorse.record().feedback.is_empty());

    world.gorse.come_back().await;
    eventually(
        "the list drained into Gorse",
        Duration::from_secs(20),
        || async {
            world.gorse.record().feedback.len() == 30 && world.dead_letter_len().await == 0
        },
    )
    .await;
    let record = world.gorse.record();
    assert_eq!(
        record.feedback_received.len(),
        30,
        "every item exactly once"
    );
    let sent: BTreeSet<String> = record
        .feedback
        .keys()
        .map(|(_, user, _)| user.clone())
        .collect();
    assert_eq!(sent, users.into_iter().collect());
    service.stop().await;
}

#[tokio::test]
async fn with_redis_and_gorse_down_nothing_is_acknowledged_and_nothing_lost() {
    let mut world = World::start().await;
    let service = world
        .start_service(world.source().with("GORSE_BATCH_SIZE", "10"))
        .await;
    eventually("consumer ready", Duration::from_secs(10), || async {
        reqwest::get(format!("{}/health/ready", service.admin))
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    world.gorse.go_away();
    world.redis.kill();
    world.publish_likes(20, PostId::new()).await;

    // Attempts happen and fail; the events stay unacknowledged in the stream.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (pending, ack_pending) = world.consumer_backlog().await.expect("consumer exists");
    assert_eq!(pending as usize + ack_pending, 20, "nothing acknowledged");

    world.redis.restart();
    world.gorse.come_back().await;
    eventually("all 20 in Gorse", Duration::from_secs(30), || async {
        world.gorse.record().feedback.len() == 20
    })
    .await;
    eventually("all acknowledged", Duration::from_secs(10), || async {
        world.consumer_backlog().await == Some((0, 0))
    })
    .await;
    service.stop().await;
}

#[tokio::test]
async fn an_undecodable_message_is_dead_lettered_and_the_stream_goes_on() {
    let world = World::start().await;
    world
        .js
        .publish(
            "events.like",
            bytes::Bytes::from_static(b"\xff\xfe not protobuf"),
        )
        .await
        .expect("publish")
        .await
        .expect("ack");
    world.publish_likes(3, PostId::new()).await;
    let service = world
        .start_service(world.source().with("GORSE_DLQ_FLUSH_INTERVAL", "1h"))
        .await;
    eventually(
        "the good events in Gorse",
        Duration::from_secs(10),
        || async { world.gorse.record().feedback.len() == 3 },
    )
    .await;
    let metrics = service.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "sidechain_feedback_dead_letter_entries_total{kind=\"poison\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "sidechain_feedback_events_total{kind=\"unknown\",outcome=\"poison\"}"
        ),
        Some(1.0)
    );
    service.stop().await;
}

#[tokio::test]
async fn gorse_health_is_published_and_follows_the_double() {
    let world = World::start().await;
    let service = world.start_service(world.source()).await;
    let status = sidechain_infra::status::GorseStatusView::default();
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(status.clone().follow(world.js.clone(), shutdown.clone()));

    eventually("healthy published", Duration::from_secs(10), || async {
        status.latest().is_some_and(|s| s.healthy)
    })
    .await;
    world.gorse.go_away();
    eventually("unhealthy published", Duration::from_secs(10), || async {
        status.latest().is_some_and(|s| !s.healthy)
    })
    .await;
    assert_eq!(
        metric(&service.metrics().await, "sidechain_gorse_healthy"),
        Some(0.0)
    );
    shutdown.cancel();
    service.stop().await;
}

// server/rest.go (v0.5.11) `AuthFilter`: `/api/health/*` skips the API key, so readiness alone
// stays green with a wrong key while every write gets 401.
#[tokio::test]
async fn a_wrong_api_key_is_reported_unauthorized_and_feedback_waits_for_the_right_one() {
    let world = World::start().await;
    world.gorse.set_api_key(Some("the-right-key"));
    let service = world
        .start_service(world.source().with("GORSE_API_KEY", "a-wrong-key"))
        .await;
    let status = sidechain_infra::status::GorseStatusView::default();
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(status.clone().follow(world.js.clone(), shutdown.clone()));

    eventually(
        "unauthorized published",
        Duration::from_secs(10),
        || async {
            status.latest().is_some_and(|s| {
                !s.healthy && s.state() == sidechain_events::rpc::GorseState::Unauthorized
            })
        },
    )
    .await;
    let metrics = service.metrics().await;
    assert_eq!(metric(&metrics, "sidechain_gorse_unauthorized"), Some(1.0));
    assert_eq!(metric(&metrics, "sidechain_gorse_healthy"), Some(0.0));

    let users = world.publish_likes(3, PostId::new()).await;
    eventually("batch dead-lettered", Duration::from_secs(10), || async {
        world.dead_letter_len().await >= 1
    })
    .await;
    assert!(world.gorse.record().feedback.is_empty());
    let mut redis = world.redis().await;
    let parked: u64 =
        redis::AsyncCommands::llen(&mut redis, sidechain_feedback::dead_letter::PARKED)
            .await
            .expect("llen");
    assert_eq!(parked, 0, "a wrong key never parks feedback");
    service.stop().await;

    // The operator fixes GORSE_API_KEY and restarts the service.
    let service = world
        .start_service(world.source().with("GORSE_API_KEY", "the-right-key"))
        .await;
    eventually("every like delivered", Duration::from_secs(15), || async {
        world.gorse.record().feedback.len() == users.len()
    })
    .await;
    eventually("healthy published", Duration::from_secs(10), || async {
        status.latest().is_some_and(|s| s.healthy)
    })
    .await;
    assert_eq!(world.dead_letter_len().await, 0);
    assert_eq!(
        metric(&service.metrics().await, "sidechain_gorse_unauthorized"),
        Some(0.0)
    );
    shutdown.cancel();
    service.stop().await;
}
