//! The feedback binary killed with SIGKILL in the middle of sending a batch: after a restart
//! every event reaches Gorse (some twice, which PUT makes harmless).

mod common;

use std::time::Duration;

use common::World;
use sidechain_events::PostId;
use sidechain_test_support::ServiceBinary;
use sidechain_test_support::eventually;

fn spawn(world: &World) -> ServiceBinary {
    ServiceBinary::spawn(
        std::path::Path::new(env!("CARGO_BIN_EXE_sidechain-feedback")),
        &[
            ("NATS_URL", world.nats.url()),
            (
                "NATS_NKEY_FILE",
                world
                    .nats
                    .seed_file(sidechain_test_support::Identity::Feedback)
                    .display()
                    .to_string(),
            ),
            (
                "REDIS_URL",
                world
                    .redis
                    .url_for(sidechain_test_support::Identity::Feedback),
            ),
            ("GORSE_URL", world.gorse.url()),
            (
                "METRICS_PORT",
                sidechain_test_support::free_port().to_string(),
            ),
            ("BIND_ADDRESS", "127.0.0.1".to_owned()),
            ("GORSE_BATCH_TIMEOUT", "200ms".to_owned()),
            ("GORSE_REQUEST_TIMEOUT", "30s".to_owned()),
            ("FEEDBACK_ACK_WAIT", "3s".to_owned()),
            ("LOG_LEVEL", "warn".to_owned()),
        ],
    )
}

#[tokio::test]
async fn a_crash_mid_batch_loses_nothing() {
    let world = World::start().await;
    let users = world.publish_likes(50, PostId::new()).await;
    world.gorse.set_latency(Duration::from_secs(30));
    let mut first = spawn(&world);

    eventually(
        "the batch is being sent",
        Duration::from_secs(20),
        || async {
            world
                .gorse
                .record()
                .requests
                .iter()
                // The batch's first call (the lookup of its unknown post, then items, feedback).
                .any(|r| r.path.starts_with("/api/item/") || r.path == "/api/feedback")
        },
    )
    .await;
    first.kill();
    assert!(
        world.gorse.record().feedback.is_empty(),
        "nothing was stored yet"
    );

    world.gorse.set_latency(Duration::ZERO);
    let second = spawn(&world);
    eventually(
        "every event in Gorse after the restart",
        Duration::from_secs(30),
        || async { world.gorse.record().feedback.len() == users.len() },
    )
    .await;
    eventually(
        "everything acknowledged",
        Duration::from_secs(10),
        || async { world.consumer_backlog().await == Some((0, 0)) },
    )
    .await;
    let stored: std::collections::BTreeSet<String> = world
        .gorse
        .record()
        .feedback
        .keys()
        .map(|(_, user, _)| user.clone())
        .collect();
    assert_eq!(stored, users.into_iter().collect());
    drop(second);
}
