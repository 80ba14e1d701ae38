//! Feeds built from events, through real NATS and Redis.

mod common;

use std::time::Duration;

use common::{World, ids};
use sidechain_events::UserId;
use sidechain_events::rpc::{FeedKind, ItemSource};
use sidechain_test_support::{eventually, metric_sum as metric};

#[tokio::test]
async fn a_followers_timeline_shows_the_post_with_live_counts_until_unfollow() {
    let world = World::start().await;
    let service = world.start_service(world.source()).await;
    let (alice, bob, carol) = (UserId::new(), UserId::new(), UserId::new());

    world.follow(alice, bob).await;
    let post = world.post(bob, &["techno"]).await;
    world.settled().await;

    let timeline = world
        .feed(FeedKind::Timeline, Some(alice), None, 20, 0)
        .await;
    assert_eq!(ids(&timeline), vec![post.to_string()]);
    let item = &timeline.items[0];
    assert!(item.is_following);
    assert!(!item.is_own_post);
    assert_eq!(item.source, ItemSource::Following as i32);
    assert_eq!(item.post.as_ref().expect("post").user_id, bob.to_string());

    world.like(carol, post).await;
    world.like(alice, post).await;
    world.like(alice, post).await; // a repeated like counts once
    world.settled().await;
    let timeline = world
        .feed(FeedKind::Timeline, Some(alice), None, 20, 0)
        .await;
    assert_eq!(timeline.items[0].counts.as_ref().expect("counts").likes, 2);

    world.unfollow(alice, bob).await;
    world.settled().await;
    let timeline = world
        .feed(FeedKind::Timeline, Some(alice), None, 20, 0)
        .await;
    assert!(timeline.items.is_empty(), "{:?}", ids(&timeline));

    // Bob sees his own post as his.
    let own = world
        .feed(FeedKind::User, Some(bob), Some(bob), 20, 0)
        .await;
    assert!(own.items[0].is_own_post);
    service.stop().await;
}

#[tokio::test]
async fn timelines_page_newest_first_with_has_more() {
    let world = World::start().await;
    let service = world.start_service(world.source()).await;
    let (reader, author) = (UserId::new(), UserId::new());
    world.follow(reader, author).await;
    let mut posts = Vec::new();
    for _ in 0..5 {
        posts.push(world.post(author, &["house"]).await.to_string());
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    world.settled().await;
    posts.reverse();
    let first = world
        .feed(FeedKind::Timeline, Some(reader), None, 2, 0)
        .await;
    assert_eq!(ids(&first), posts[..2].to_vec());
    assert!(first.has_more);
    let last = world
        .feed(FeedKind::Timeline, Some(reader), None, 2, 4)
        .await;
    assert_eq!(ids(&last), posts[4..].to_vec());
    assert!(!last.has_more);
    service.stop().await;
}

#[tokio::test]
async fn trending_follows_the_documented_score() {
    let world = World::start().await;
    let service = world.start_service(world.source()).await;
    let author = UserId::new();
    let quiet = world.post(author, &["ambient"]).await;
    let popular = world.post(author, &["techno"]).await;
    let liked_some = world.post(author, &["house"]).await;
    for _ in 0..5 {
        world.like(UserId::new(), popular).await;
    }
    for _ in 0..2 {
        world.like(UserId::new(), liked_some).await;
    }
    world.settled().await;
    let trending = world.feed(FeedKind::Trending, None, None, 10, 0).await;
    assert_eq!(
        ids(&trending),
        vec![
            popular.to_string(),
            liked_some.to_string(),
            quiet.to_string()
        ]
    );
    assert!(
        trending
            .items
            .iter()
            .all(|i| i.source == ItemSource::Trending as i32)
    );
    service.stop().await;
}

#[tokio::test]
async fn unified_mixes_sources_and_falls_back_to_trending_when_gorse_is_unhealthy() {
    let world = World::start().await;
    let service = world.start_service(world.source()).await;
    let (viewer, followed, stranger) = (UserId::new(), UserId::new(), UserId::new());
    world.follow(viewer, followed).await;
    let from_followed = world.post(followed, &["techno"]).await;
    let recommended = world.post(stranger, &["dub"]).await;
    let own = world.post(viewer, &["jazz"]).await;
    world.settled().await;
    world.gorse.set_recommendations(
        &viewer.to_string(),
        vec![recommended.to_string(), "user:x".into()],
    );

    let unified = world
        .feed(FeedKind::Unified, Some(viewer), None, 10, 0)
        .await;
    let source_of = |post: &str| {
        unified
            .items
            .iter()
            .find(|i| i.post.as_ref().is_some_and(|p| p.id == post))
            .map(|i| i.source)
    };
    assert_eq!(
        source_of(&from_followed.to_string()),
        Some(ItemSource::Following as i32)
    );
    assert_eq!(
        source_of(&recommended.to_string()),
        Some(ItemSource::Gorse as i32)
    );
    assert_eq!(
        source_of(&own.to_string()),
        None,
        "own posts stay out of unified"
    );

    // The feedback service reports Gorse unhealthy: recommendations come from trending.
    let publisher = sidechain_infra::status::GorseStatusPublisher::new(world.js.clone());
    publisher
        .publish(sidechain_events::rpc::GorseStatus {
            healthy: false,
            checked_at_ms: 1,
            changed_at_ms: 1,
            state: sidechain_events::rpc::GorseState::Unhealthy.into(),
        })
        .await
        .expect("status");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let for_you = world
        .feed(FeedKind::ForYou, Some(viewer), None, 10, 0)
        .await;
    assert!(!for_you.items.is_empty());
    assert!(
        for_you
            .items
            .iter()
            .all(|i| i.source == ItemSource::Trending as i32)
    );
    let metrics = service.metrics().await;
    assert!(
        metric(
            &metrics,
            "sidechain_cache_gorse_fallbacks_total{feed=\"for_you\",reason=\"unhealthy\"}"
        ) >= 1.0
    );
    service.stop().await;
}

#[tokio::test]
async fn repeated_requests_are_cache_hits_and_fifty_concurrent_misses_rebuild_once() {
    let world = World::start().await;
    let service = world.start_service(world.source()).await;
    let author = UserId::new();
    for _ in 0..3 {
        world.post(author, &["techno"]).await;
    }
    world.settled().await;

    let viewer = Some(UserId::new());
    let requests = (0..50).map(|_| world.feed(FeedKind::User, viewer, Some(author), 20, 0));
    let pages = futures::future::join_all(requests).await;
    assert!(pages.iter().all(|p| p.items.len() == 3));
    for _ in 0..10 {
        world
            .feed(FeedKind::User, viewer, Some(author), 20, 0)
            .await;
    }
    let metrics = service.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "sidechain_cache_page_requests_total{feed=\"user\",result=\"miss\"}"
        ),
        1.0
    );
    let served = metric(
        &metrics,
        "sidechain_cache_page_requests_total{feed=\"user\"",
    );
    assert_eq!(served, 60.0);
    service.stop().await;
}

#[tokio::test]
async fn a_new_post_invalidates_the_cached_pages_that_should_show_it() {
    let world = World::start().await;
    let service = world.start_service(world.source()).await;
    let (reader, author) = (UserId::new(), UserId::new());
    world.follow(reader, author).await;
    world.post(author, &["techno"]).await;
    world.settled().await;
    assert_eq!(
        world
            .feed(FeedKind::Timeline, Some(reader), None, 20, 0)
            .await
            .items
            .len(),
        1
    );
    assert_eq!(
        world
            .feed(FeedKind::User, None, Some(author), 20, 0)
            .await
            .items
            .len(),
        1
    );

    let started = tokio::time::Instant::now();
    let fresh = world.post(author, &["techno"]).await;
    let mut seen_after = None;
    while started.elapsed() < Duration::from_secs(5) {
        let timeline = world
            .feed(FeedKind::Timeline, Some(reader), None, 20, 0)
            .await;
        if ids(&timeline).first() == Some(&fresh.to_string()) {
            seen_after = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let delay = seen_after.expect("the new post reached the cached timeline");
    assert!(delay < Duration::from_millis(1000), "took {delay:?}");
    assert_eq!(
        world
            .feed(FeedKind::User, None, Some(author), 20, 0)
            .await
            .items
            .len(),
        2
    );
    service.stop().await;
}

#[tokio::test]
async fn a_wiped_redis_is_rebuilt_from_the_stream_to_the_same_feeds() {
    let world = World::start().await;
    let service = world.start_service(world.source()).await;
    let (reader, author, fan) = (UserId::new(), UserId::new(), UserId::new());
    world.follow(reader, author).await;
    let first = world.post(author, &["techno"]).await;
    world.post(author, &["house"]).await;
    world.like(fan, first).await;
    world.settled().await;
    let before_timeline = world
        .feed(FeedKind::Timeline, Some(reader), None, 20, 0)
        .await;
    let before_trending = world.feed(FeedKind::Trending, None, None, 20, 0).await;

    world.wipe_redis().await;
    // Any new event makes the applier notice the empty Redis.
    world.post(UserId::new(), &["dub"]).await;
    world.settled().await;

    let after_timeline = world
        .feed(FeedKind::Timeline, Some(reader), None, 20, 0)
        .await;
    assert_eq!(after_timeline, before_timeline);
    let after_trending = world.feed(FeedKind::Trending, None, None, 20, 0).await;
    assert!(ids(&after_trending).starts_with(&ids(&before_trending)[..1]));
    assert_eq!(after_trending.items.len(), before_trending.items.len() + 1);
    let metrics = service.metrics().await;
    assert_eq!(
        metric(&metrics, "sidechain_cache_stream_rebuilds_total"),
        1.0
    );
    service.stop().await;
}

#[tokio::test]
async fn the_consumer_lag_gauge_keeps_moving_while_applying_is_stuck() {
    let mut world = World::start().await;
    let service = world
        .start_service(world.source().with("CONSUMER_LAG_INTERVAL", "100ms"))
        .await;
    let lag_is = |expected: f64| {
        let service = &service;
        move || async move {
            metric(
                &service.metrics().await,
                "sidechain_cache_consumer_lag_messages",
            ) == expected
        }
    };
    let author = UserId::new();
    world.post(author, &["techno"]).await;
    world.settled().await;
    eventually("no lag", Duration::from_secs(10), lag_is(0.0)).await;

    // No batch can be applied while Redis is down; the gauge still shows the backlog grow.
    world.redis.kill();
    for _ in 0..3 {
        world.post(author, &["house"]).await;
    }
    eventually("a lag of 3", Duration::from_secs(10), lag_is(3.0)).await;

    world.redis.restart();
    world.settled().await;
    eventually("no lag again", Duration::from_secs(10), lag_is(0.0)).await;
    service.stop().await;
}
