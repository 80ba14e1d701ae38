//! Items whose `post_created` never reached Gorse are written from the cache service's read
//! models (`posts.get`): at once when their feedback comes, or by the reconciliation pass that
//! resolves hidden placeholders. Real NATS, Redis and cache service; the Gorse double drops
//! feedback on unknown items as the deployed Gorse does (`auto_insert_item = false`).

mod common;

use std::time::Duration;

use common::World;
use redis::AsyncCommands as _;
use serde_json::json;
use sidechain_events::events::{PostCreated, PostDeleted, event::Payload};
use sidechain_events::{EventId, NewEvent, PostId, UserId};
use sidechain_infra::nats;
use sidechain_infra::service::Running;
use sidechain_test_support::{Identity, eventually, metric};
use tokio_util::sync::CancellationToken;

/// A cache service on the same NATS and Redis, with its own identities.
struct Cache {
    shutdown: CancellationToken,
    running: Running,
}

impl Cache {
    async fn start(world: &World) -> Self {
        let source = world
            .nats
            .source(Identity::Cache)
            .with("REDIS_URL", world.redis.url_for(Identity::Cache))
            .with("GORSE_URL", world.gorse.url())
            .with("METRICS_PORT", "0")
            .with("BIND_ADDRESS", "127.0.0.1")
            .with("SHUTDOWN_TIMEOUT", "5s");
        let config = sidechain_cache::Config::from_source(&source).expect("cache config");
        let shutdown = CancellationToken::new();
        let running = sidechain_cache::start(config, shutdown.clone())
            .await
            .expect("cache starts");
        Self { shutdown, running }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.running.wait().await.expect("cache stops cleanly");
    }
}

async fn publish(world: &World, actor: UserId, payload: Payload) {
    let event = NewEvent::new(EventId::new(), actor, "author", payload);
    nats::publish_event(&world.js, &event)
        .await
        .expect("published");
}

fn created(post: PostId, genres: &[&str]) -> Payload {
    Payload::PostCreated(PostCreated {
        post_id: post.to_string(),
        title: "Night drive".into(),
        audio_url: "https://cdn.example/a.wav".into(),
        bpm: 124.5,
        key: "C minor".into(),
        genres: genres.iter().map(|g| (*g).to_owned()).collect(),
        duration_seconds: 8.0,
        ..Default::default()
    })
}

async fn parked(world: &World) -> u64 {
    world
        .redis()
        .await
        .llen("{gorse_failed_feedback}:parked")
        .await
        .expect("llen")
}

async fn pending_placeholders(world: &World) -> u64 {
    world
        .redis()
        .await
        .zcard("gorse_placeholders")
        .await
        .expect("zcard")
}

/// The item the post of [`created`] maps to, as `post_created` writes it.
fn assert_full_item(item: &serde_json::Value, genres: &[&str]) {
    assert_eq!(item["IsHidden"], false, "visible: {item}");
    let mut categories: Vec<&str> = genres.to_vec();
    categories.extend(["bpm_120", "key_c_minor"]);
    assert_eq!(item["Categories"], json!(categories), "{item}");
    assert_eq!(
        item["Labels"],
        json!({"genres": genres, "bpm": 124.5, "key": "C minor"}),
        "{item}"
    );
    assert_eq!(item["Comment"], "Night drive");
}

#[tokio::test]
async fn a_like_on_a_post_whose_upsert_gorse_refused_writes_the_full_item_from_the_read_models() {
    let world = World::start().await;
    let cache = Cache::start(&world).await;
    let service = world.start_service(world.source()).await;

    // Gorse refuses the post's own upsert: it is parked, and Gorse never has the item.
    world.gorse.fail_next(1, 400);
    let (author, post) = (UserId::new(), PostId::new());
    publish(&world, author, created(post, &["house"])).await;
    eventually(
        "the refused upsert parked",
        Duration::from_secs(10),
        || async { parked(&world).await == 1 },
    )
    .await;
    assert!(!world.gorse.record().items.contains_key(&post.to_string()));

    let likers = world.publish_likes(1, post).await;
    eventually("the like stored", Duration::from_secs(10), || async {
        world.gorse.record().feedback.len() == 1
    })
    .await;
    let record = world.gorse.record();
    assert_full_item(&record.items[&post.to_string()], &["house"]);
    assert!(record.feedback.contains_key(&(
        "like".to_owned(),
        likers[0].clone(),
        post.to_string()
    )));
    let metrics = service.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "sidechain_gorse_reconciled_items_total{outcome=\"upserted\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "sidechain_gorse_placeholder_items_total"),
        Some(0.0),
        "no placeholder was needed: {metrics}"
    );
    assert_eq!(pending_placeholders(&world).await, 0);
    service.stop().await;
    cache.stop().await;
}

#[tokio::test]
async fn placeholders_are_resolved_once_the_read_models_know_their_posts() {
    let world = World::start().await;
    // No cache service yet: the read models cannot be asked, so likes get placeholders.
    let service = world
        .start_service(world.source().with("GORSE_RECONCILE_INTERVAL", "300ms"))
        .await;
    let (author, kept, gone) = (UserId::new(), PostId::new(), PostId::new());
    let mut likers = world.publish_likes(1, kept).await;
    likers.extend(world.publish_likes(1, gone).await);
    eventually(
        "two hidden placeholders, tracked",
        Duration::from_secs(10),
        || async {
            let record = world.gorse.record();
            record.feedback.len() == 2
                && [kept, gone]
                    .iter()
                    .all(|p| record.items[&p.to_string()]["IsHidden"] == true)
                && pending_placeholders(&world).await == 2
        },
    )
    .await;

    // The posts' own events: `kept`'s upsert is refused by Gorse (parked), `gone` is deleted.
    world.gorse.fail_next(1, 400);
    publish(&world, author, created(kept, &["techno", "house"])).await;
    publish(&world, author, created(gone, &["ambient"])).await;
    publish(
        &world,
        author,
        Payload::PostDeleted(PostDeleted {
            post_id: gone.to_string(),
        }),
    )
    .await;
    eventually(
        "the refused upsert parked",
        Duration::from_secs(10),
        || async { parked(&world).await >= 1 },
    )
    .await;
    assert_eq!(
        world.gorse.record().items[&kept.to_string()]["IsHidden"],
        true,
        "still a placeholder"
    );

    // The read models learn the posts; the next pass writes `kept` and drops `gone`.
    let cache = Cache::start(&world).await;
    eventually("placeholders resolved", Duration::from_secs(15), || async {
        pending_placeholders(&world).await == 0
    })
    .await;
    let record = world.gorse.record();
    assert_full_item(&record.items[&kept.to_string()], &["techno", "house"]);
    assert!(!record.items.contains_key(&gone.to_string()));
    assert!(
        record
            .feedback
            .contains_key(&("like".to_owned(), likers[0].clone(), kept.to_string())),
        "the like stays"
    );

    // Idempotent: further passes change nothing.
    let writes = |r: &sidechain_test_support::GorseRecord| {
        r.requests.iter().filter(|q| q.method != "GET").count()
    };
    let before = writes(&world.gorse.record());
    tokio::time::sleep(Duration::from_millis(900)).await;
    let after = world.gorse.record();
    assert_eq!(writes(&after), before, "{:?}", after.requests);
    assert_eq!(after.items, record.items);

    let metrics = service.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "sidechain_gorse_reconciled_items_total{outcome=\"upserted\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "sidechain_gorse_reconciled_items_total{outcome=\"deleted\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "sidechain_gorse_placeholders_pending"),
        Some(0.0)
    );
    assert!(
        metric(&metrics, "sidechain_gorse_reconcile_duration_seconds_count").unwrap_or(0.0) >= 1.0,
        "{metrics}"
    );
    service.stop().await;
    cache.stop().await;
}

// Gorse v0.5.11 has no insert-if-absent for items (storage/data/sql.go `BatchInsertItems`
// upserts), so an instance that saw a 404 just before another wrote the real item overwrites it
// with its placeholder. Its pending entry makes the next pass write the full item back.
#[tokio::test]
async fn a_placeholder_that_overwrote_a_real_item_is_rewritten_by_the_next_pass() {
    let world = World::start().await;
    let cache = Cache::start(&world).await;
    let service = world
        .start_service(world.source().with("GORSE_RECONCILE_INTERVAL", "300ms"))
        .await;
    let (author, post) = (UserId::new(), PostId::new());
    publish(&world, author, created(post, &["dub"])).await;
    eventually(
        "the real item in Gorse",
        Duration::from_secs(10),
        || async {
            world
                .gorse
                .record()
                .items
                .get(&post.to_string())
                .is_some_and(|item| item["IsHidden"] == false)
        },
    )
    .await;

    // What the racing instance did: the placeholder over the real item, then its pending entry.
    let placeholder = json!([{"ItemId": post.to_string(), "IsHidden": true, "Categories": [],
        "Labels": [], "Timestamp": "2026-01-01T00:00:00Z", "Comment": ""}]);
    reqwest::Client::new()
        .post(format!("{}/api/items", world.gorse.url()))
        .json(&placeholder)
        .send()
        .await
        .expect("overwrite")
        .error_for_status()
        .expect("overwritten");
    let () = world
        .redis()
        .await
        .zadd(
            "gorse_placeholders",
            post.to_string(),
            sidechain_events::now_ms(),
        )
        .await
        .expect("zadd");

    eventually("the full item back", Duration::from_secs(10), || async {
        pending_placeholders(&world).await == 0
    })
    .await;
    assert_full_item(&world.gorse.record().items[&post.to_string()], &["dub"]);
    service.stop().await;
    cache.stop().await;
}

#[tokio::test]
async fn an_item_gorse_refuses_leaves_the_pending_set_and_is_counted() {
    let world = World::start().await;
    let service = world
        .start_service(world.source().with("GORSE_RECONCILE_INTERVAL", "300ms"))
        .await;
    let (author, post) = (UserId::new(), PostId::new());
    world.publish_likes(1, post).await;
    // Tracked first, written second: wait for both, or the failure injected next could hit the
    // placeholder's own write instead of the upsert it is meant for.
    eventually(
        "a tracked placeholder in Gorse",
        Duration::from_secs(10),
        || async {
            pending_placeholders(&world).await == 1
                && world.gorse.record().items.contains_key(&post.to_string())
        },
    )
    .await;
    world.gorse.fail_next(1, 400);
    publish(&world, author, created(post, &["jungle"])).await;
    eventually(
        "the refused upsert parked",
        Duration::from_secs(10),
        || async { parked(&world).await == 1 },
    )
    .await;

    // The pass's batch upsert and then the row on its own are refused.
    world.gorse.fail_next(2, 400);
    let cache = Cache::start(&world).await;
    eventually("the pending set empty", Duration::from_secs(15), || async {
        pending_placeholders(&world).await == 0
    })
    .await;
    assert_eq!(
        world.gorse.record().items[&post.to_string()]["IsHidden"],
        true,
        "still the placeholder"
    );
    let metrics = service.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "sidechain_gorse_reconciled_items_total{outcome=\"refused\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    service.stop().await;
    cache.stop().await;
}
