//! The dead-letter list against a real Redis and the Gorse test double.

mod common;

use common::World;
use prometheus_client::registry::Registry;
use redis::AsyncCommands as _;
use sidechain_config::Source;
use sidechain_feedback::dead_letter::{
    DeadLetter, DeadLetters, FlushReport, LIST, PARKED, PROCESSING,
};
use sidechain_feedback::delivery::Delivery;
use sidechain_feedback::mapping::GorseOp;
use sidechain_feedback::metrics::FeedbackMetrics;
use sidechain_gorse::{Feedback, GorseClient, GorseConfig};
use sidechain_infra::redis::{RedisConfig, connect};

fn like(user: &str) -> GorseOp {
    GorseOp::UpsertFeedback(Feedback {
        feedback_type: "like".into(),
        user_id: user.into(),
        item_id: "p".into(),
        value: 1.0,
        timestamp: "2026-11-25T10:00:00Z".into(),
        comment: String::new(),
    })
}

fn dead_letters(world: &World) -> DeadLetters {
    let mut registry = Registry::default();
    let metrics = FeedbackMetrics::register(&mut registry);
    let config = RedisConfig::from_source(&Source::default().with("REDIS_URL", world.redis.url()))
        .expect("config");
    DeadLetters::new(connect(&config).expect("redis"), metrics)
}

fn delivery_to(gorse_url: &str) -> Delivery {
    let mut registry = Registry::default();
    let source = Source::default()
        .with("GORSE_URL", gorse_url)
        .with("GORSE_RETRY_MAX_ATTEMPTS", "1");
    let config = GorseConfig::from_source(&source).expect("config");
    let gorse = GorseClient::new(&config, &mut registry).expect("client");
    Delivery::new(gorse, &mut registry)
}

#[tokio::test]
async fn an_entry_left_in_processing_by_a_crash_is_restored_and_delivered_in_order() {
    let world = World::start().await;
    let (dead_letters, delivery) = (dead_letters(&world), delivery_to(&world.gorse.url()));
    for user in ["a", "b", "c"] {
        dead_letters
            .push(&DeadLetter::batch(vec![like(user)], "test"))
            .await
            .expect("push");
    }
    // A flusher took the oldest entry and died before sending it.
    let mut redis = world.redis().await;
    let _: Option<String> = redis
        .lmove(
            LIST,
            PROCESSING,
            redis::Direction::Left,
            redis::Direction::Right,
        )
        .await
        .expect("lmove");

    let report = dead_letters.flush(&delivery).await.expect("flush");
    assert_eq!(
        report,
        FlushReport {
            delivered: 3,
            parked: 0,
            remaining: 0
        }
    );
    let users: Vec<String> = world
        .gorse
        .record()
        .feedback_received
        .iter()
        .map(|row| row["UserId"].as_str().expect("user").to_owned())
        .collect();
    assert_eq!(users, vec!["a", "b", "c"], "the restored entry went first");
    let lengths: (u64, u64) = (
        redis.llen(LIST).await.expect("llen"),
        redis.llen(PROCESSING).await.expect("llen"),
    );
    assert_eq!(lengths, (0, 0));
    assert!(!dead_letters.has_backlog());
}

#[tokio::test]
async fn a_flush_stops_at_the_first_failure_and_keeps_the_entry_at_the_head() {
    let world = World::start().await;
    let (dead_letters, delivery) = (dead_letters(&world), delivery_to(&world.gorse.url()));
    for user in ["a", "b"] {
        dead_letters
            .push(&DeadLetter::batch(vec![like(user)], "test"))
            .await
            .expect("push");
    }
    world.gorse.fail_next(1, 503);
    let report = dead_letters.flush(&delivery).await.expect("flush");
    assert_eq!(report.delivered, 0);
    assert_eq!(report.remaining, 2);
    let mut redis = world.redis().await;
    let head: String = redis.lindex(LIST, 0).await.expect("lindex");
    assert!(head.contains(r#""UserId":"a""#), "{head}");
    assert!(dead_letters.has_backlog());

    let report = dead_letters.flush(&delivery).await.expect("flush");
    assert_eq!(report.delivered, 2);
}

#[tokio::test]
async fn refused_and_poison_entries_are_parked_not_retried() {
    let world = World::start().await;
    let (dead_letters, delivery) = (dead_letters(&world), delivery_to(&world.gorse.url()));
    dead_letters
        .push(&DeadLetter::poison("malformed", "events.like", 7, b"\xff"))
        .await
        .expect("push");
    dead_letters
        .push(&DeadLetter::batch(vec![like("a")], "test"))
        .await
        .expect("push");
    // A Gorse that refuses the batch itself (400): it is parked, not retried.
    world.gorse.fail_next(1, 400);
    let refused = dead_letters.flush(&delivery).await.expect("flush");
    assert_eq!(
        refused,
        FlushReport {
            delivered: 0,
            parked: 2,
            remaining: 0
        }
    );
    let mut redis = world.redis().await;
    let parked: u64 = redis.llen(PARKED).await.expect("llen");
    assert_eq!(parked, 2);
    // Nothing left for a healthy Gorse to retry.
    assert_eq!(
        dead_letters
            .flush(&delivery)
            .await
            .expect("flush")
            .delivered,
        0
    );
}

// server/rest.go (v0.5.11) `AuthFilter`: a wrong key is 401 on every write. That is our
// configuration, not the batch: it waits in the list and is delivered once the key matches.
#[tokio::test]
async fn a_refused_api_key_keeps_entries_waiting_until_the_key_matches() {
    let world = World::start().await;
    let dead_letters = dead_letters(&world);
    for user in ["a", "b"] {
        dead_letters
            .push(&DeadLetter::batch(vec![like(user)], "test"))
            .await
            .expect("push");
    }
    let locked = sidechain_test_support::GorseDouble::start_with_api_key("a-key-we-lack").await;
    let delivery = delivery_to(&locked.url());
    let report = dead_letters.flush(&delivery).await.expect("flush");
    assert_eq!(
        report,
        FlushReport {
            delivered: 0,
            parked: 0,
            remaining: 2
        }
    );
    let mut redis = world.redis().await;
    let parked: u64 = redis.llen(PARKED).await.expect("llen");
    assert_eq!(parked, 0, "a wrong key never parks");

    locked.set_api_key(None);
    let report = dead_letters.flush(&delivery).await.expect("flush");
    assert_eq!(report.delivered, 2);
    assert_eq!(locked.record().feedback.len(), 2);
}

fn item(id: &str, labels: serde_json::Value) -> GorseOp {
    GorseOp::UpsertItem(sidechain_gorse::Item {
        item_id: id.into(),
        is_hidden: false,
        categories: vec!["house".into()],
        labels,
        timestamp: "2026-11-25T10:00:00Z".into(),
        comment: String::new(),
    })
}

// storage/data/database.go (v0.5.11) `ValidateLabels` and server/rest.go `insertItems`: one
// item with a boolean label makes Gorse answer 400 to the whole request.
#[tokio::test]
async fn one_invalid_label_parks_only_its_row_and_every_other_row_lands() {
    let world = World::start().await;
    let (dead_letters, delivery) = (dead_letters(&world), delivery_to(&world.gorse.url()));
    let mut ops: Vec<GorseOp> = (0..7)
        .map(|i| item(&format!("p{i}"), serde_json::json!({"genres": ["house"]})))
        .collect();
    ops.insert(3, item("bad", serde_json::json!({"explicit": true})));
    ops.extend(["a", "b", "c"].map(like));

    let refused = delivery
        .deliver(&ops)
        .await
        .expect("Gorse usable")
        .expect("one row refused");
    assert_eq!(
        refused.ops,
        vec![item("bad", serde_json::json!({"explicit": true}))]
    );
    assert_eq!(refused.reason, "unsupported type in labels: bool");
    let record = world.gorse.record();
    // Every other item, and the hidden placeholder for the liked item `p` Gorse lacked.
    assert_eq!(record.items.len(), 8, "every other item landed");
    assert_eq!(record.items["p"]["IsHidden"], true);
    assert!(!record.items.contains_key("bad"));
    assert_eq!(record.feedback.len(), 3, "feedback landed");

    // From the dead-letter list: the rest is delivered, the bad row alone is parked.
    dead_letters
        .push(&DeadLetter::batch(ops, "test"))
        .await
        .expect("push");
    let report = dead_letters.flush(&delivery).await.expect("flush");
    assert_eq!(
        report,
        FlushReport {
            delivered: 1,
            parked: 1,
            remaining: 0
        }
    );
    let mut redis = world.redis().await;
    let parked: Vec<String> = redis.lrange(PARKED, 0, -1).await.expect("lrange");
    assert_eq!(parked.len(), 1);
    assert!(parked[0].contains(r#""ItemId":"bad""#), "{}", parked[0]);
    assert!(!parked[0].contains(r#""ItemId":"p0""#), "{}", parked[0]);
}
