//! What the plugin reads of a feed item and a post, built from events through real NATS and
//! Redis: the viewer's flags and counts stay exact under repeated and concurrent likes, reactions
//! count one per user, a cursor pages a feed without repeats or gaps while posts arrive, and the
//! post lookup carries what `POST /posts/{id}/download` answers.

mod common;

use std::time::Duration;

use common::{World, ids};
use futures::future::join_all;
use sidechain_events::events::event::Payload;
use sidechain_events::events::{Comment, Like, Unlike};
use sidechain_events::rpc::{
    CommentsReply, CommentsRequest, FeedKind, FeedRequest, LookupReply, LookupRequest,
    lookup_request::Target,
};
use sidechain_events::{CommentId, PostId, UserId, subjects};
use sidechain_infra::nats;

fn like(post: PostId, emoji: &str) -> Payload {
    Payload::Like(Like {
        post_id: post.to_string(),
        emoji: emoji.to_owned(),
    })
}

fn unlike(post: PostId) -> Payload {
    Payload::Unlike(Unlike {
        post_id: post.to_string(),
    })
}

#[tokio::test]
async fn flags_and_counts_stay_exact_under_repeated_and_concurrent_likes() {
    let world = World::start().await;
    let service = world.start_service(world.source()).await;
    let author = UserId::new();
    let post = world.post(author, &["techno"]).await;
    let fans: Vec<UserId> = (0..12).map(|_| UserId::new()).collect();

    // Every fan likes three times at once (the plugin retries; users double-click); the first
    // four react with 🔥, the next four with ❤️, the rest plainly.
    let emoji_of = |i: usize| match i {
        0..4 => "🔥",
        4..8 => "❤️",
        _ => "",
    };
    join_all(fans.iter().enumerate().flat_map(|(i, fan)| {
        let world = &world;
        (0..3).map(move |_| world.publish(*fan, like(post, emoji_of(i))))
    }))
    .await;
    world.settled().await;

    let seen_by = |viewer: UserId| {
        let world = &world;
        async move {
            let page = world
                .feed(FeedKind::User, Some(viewer), Some(author), 20, 0)
                .await;
            assert_eq!(ids(&page), vec![post.to_string()]);
            page.items[0].clone()
        }
    };
    let item = seen_by(fans[0]).await;
    assert_eq!(item.counts.as_ref().expect("counts").likes, 12);
    assert!(item.is_liked);
    assert!(!item.is_reposted);
    assert!(!item.is_saved);
    assert_eq!(item.reaction_counts.get("🔥"), Some(&4));
    assert_eq!(item.reaction_counts.get("❤️"), Some(&4));
    assert_eq!(item.reaction_counts.len(), 2);
    assert!(!seen_by(author).await.is_liked);

    // Fan 0 changes its reaction (the count moves, not adds); fans 1–3 unlike twice at once
    // while fan 8 likes again: the set decides, not the number of events.
    world.publish(fans[0], like(post, "❤️")).await;
    let mut writes = Vec::new();
    for fan in &fans[1..4] {
        writes.push(world.publish(*fan, unlike(post)));
        writes.push(world.publish(*fan, unlike(post)));
    }
    writes.push(world.publish(fans[8], like(post, "")));
    join_all(writes).await;
    world.settled().await;

    let item = seen_by(fans[0]).await;
    assert_eq!(item.counts.as_ref().expect("counts").likes, 9);
    assert_eq!(item.reaction_counts.get("❤️"), Some(&5));
    assert_eq!(item.reaction_counts.get("🔥"), None, "no one holds 🔥 now");
    assert!(!seen_by(fans[1]).await.is_liked);
    assert!(seen_by(fans[8]).await.is_liked);
    service.stop().await;
}

#[tokio::test]
async fn a_cursor_pages_a_user_feed_without_repeats_or_gaps_while_posts_arrive() {
    let world = World::start().await;
    let service = world.start_service(world.source()).await;
    let author = UserId::new();
    let mut posts = Vec::new();
    for _ in 0..5 {
        posts.push(world.post(author, &["house"]).await.to_string());
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    world.settled().await;
    posts.reverse();

    let first = world.feed(FeedKind::User, None, Some(author), 2, 0).await;
    assert_eq!(ids(&first), posts[..2].to_vec());
    assert_eq!(first.total, 5);
    assert!(!first.next_cursor.is_empty());

    // Three posts arrive between page 1 and page 2.
    for _ in 0..3 {
        world.post(author, &["house"]).await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    world.settled().await;

    let page = |cursor: String| FeedRequest {
        kind: FeedKind::User as i32,
        target_user_id: author.to_string(),
        limit: 2,
        cursor,
        ..Default::default()
    };
    let second = world.feed_request(&page(first.next_cursor.clone())).await;
    assert_eq!(ids(&second), posts[2..4].to_vec());
    assert!(second.has_more);
    let third = world.feed_request(&page(second.next_cursor.clone())).await;
    assert_eq!(ids(&third), posts[4..].to_vec());
    assert!(!third.has_more);
    assert!(third.next_cursor.is_empty());
    assert_eq!(third.total, 8);

    // The offset form cannot promise this: its page 2 now repeats page 1's items.
    let by_offset = world.feed(FeedKind::User, None, Some(author), 2, 2).await;
    assert!(ids(&by_offset).iter().any(|id| ids(&first).contains(id)));
    service.stop().await;
}

#[tokio::test]
async fn a_cursor_pages_a_timeline_and_a_bad_cursor_is_refused() {
    let world = World::start().await;
    let service = world.start_service(world.source()).await;
    let (reader, author) = (UserId::new(), UserId::new());
    world.follow(reader, author).await;
    let mut posts = Vec::new();
    for _ in 0..4 {
        posts.push(world.post(author, &["dub"]).await.to_string());
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    world.settled().await;
    posts.reverse();
    let first = world
        .feed(FeedKind::Timeline, Some(reader), None, 3, 0)
        .await;
    world.post(author, &["dub"]).await;
    world.settled().await;
    let second = world
        .feed_request(&FeedRequest {
            kind: FeedKind::Timeline as i32,
            viewer_user_id: reader.to_string(),
            limit: 3,
            cursor: first.next_cursor.clone(),
            ..Default::default()
        })
        .await;
    assert_eq!(ids(&second), posts[3..].to_vec());

    let bad: sidechain_events::rpc::FeedReply = nats::request(
        &world.client,
        &subjects::feed_subject(FeedKind::Timeline),
        &FeedRequest {
            kind: FeedKind::Timeline as i32,
            viewer_user_id: reader.to_string(),
            limit: 3,
            cursor: "not-a-cursor".into(),
            ..Default::default()
        },
        Duration::from_secs(5),
    )
    .await
    .expect("reply");
    assert!(
        matches!(
            bad.result,
            Some(sidechain_events::rpc::feed_reply::Result::Error(ref e)) if e.code == 2
        ),
        "{bad:?}"
    );
    service.stop().await;
}

#[tokio::test]
async fn a_post_lookup_carries_the_post_its_counts_and_the_viewers_like() {
    let world = World::start().await;
    let service = world.start_service(world.source()).await;
    let (author, fan) = (UserId::new(), UserId::new());
    let post = world.post(author, &["ambient"]).await;
    world.publish(fan, like(post, "")).await;
    world
        .publish(
            fan,
            Payload::Download(sidechain_events::events::Download {
                post_id: post.to_string(),
            }),
        )
        .await;
    for text in ["one", "two", "three"] {
        world
            .publish(
                fan,
                Payload::Comment(Comment {
                    comment_id: CommentId::new().to_string(),
                    post_id: post.to_string(),
                    content: text.into(),
                    parent_id: String::new(),
                }),
            )
            .await;
    }
    world.settled().await;

    let lookup = |viewer: UserId| LookupRequest {
        target: Some(Target::PostId(post.to_string())),
        viewer_user_id: viewer.to_string(),
    };
    let reply: LookupReply = nats::request(
        &world.client,
        subjects::LOOKUP_POST,
        &lookup(fan),
        Duration::from_secs(5),
    )
    .await
    .expect("reply");
    assert!(reply.found);
    assert!(reply.viewer_liked);
    let data = reply.post.expect("post");
    assert_eq!(data.audio_url, "https://cdn.example/a.wav");
    let counts = reply.counts.expect("counts");
    assert_eq!((counts.likes, counts.downloads, counts.comments), (1, 1, 3));
    let reply: LookupReply = nats::request(
        &world.client,
        subjects::LOOKUP_POST,
        &lookup(author),
        Duration::from_secs(5),
    )
    .await
    .expect("reply");
    assert!(!reply.viewer_liked);

    let comments: CommentsReply = nats::request(
        &world.client,
        subjects::COMMENTS_LIST,
        &CommentsRequest {
            post_id: post.to_string(),
            limit: 2,
            offset: 0,
        },
        Duration::from_secs(5),
    )
    .await
    .expect("reply");
    assert_eq!(comments.comments.len(), 2);
    assert_eq!(comments.total_count, 3);
    assert!(comments.has_more);
    service.stop().await;
}

#[tokio::test]
async fn offset_pages_of_the_unified_feed_keep_their_order_while_posts_arrive() {
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

    // The plugin pages the unified feed by offset only (FeedClient.cpp).
    let first = world
        .feed(FeedKind::Unified, Some(reader), None, 2, 0)
        .await;
    assert_eq!(ids(&first).len(), 2);
    // Posts arrive from the followed author between the reads (they invalidate the pages).
    let mut newer = Vec::new();
    for _ in 0..3 {
        newer.push(world.post(author, &["house"]).await.to_string());
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    world.settled().await;
    let second = world
        .feed(FeedKind::Unified, Some(reader), None, 2, 2)
        .await;
    let third = world
        .feed(FeedKind::Unified, Some(reader), None, 2, 4)
        .await;
    let mut seen: Vec<String> = [&first, &second, &third]
        .iter()
        .flat_map(|p| ids(p))
        .collect();
    assert!(!third.has_more);
    let read = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), read, "no post twice");
    let mut expected = posts.clone();
    expected.sort();
    assert_eq!(seen, expected, "every post of the first read, none skipped");

    // Reading page one again is a refresh: the new posts show.
    let refreshed = world
        .feed(FeedKind::Unified, Some(reader), None, 20, 0)
        .await;
    for post in &newer {
        assert!(ids(&refreshed).contains(post), "{post} after a refresh");
    }
    service.stop().await;
}
