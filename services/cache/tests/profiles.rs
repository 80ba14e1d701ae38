//! The profile read model over NATS request/reply (`users.profile`, `users.followers`,
//! `users.following`): exact counts under repeated and concurrent follows, time-ordered pages,
//! profile edits and username changes reaching lists and feed authors, and the same answers
//! after Redis is wiped and the stream replayed.

mod common;

use std::time::Duration;

use common::World;
use sidechain_events::events::{ProfileUpdated, UserRegistered, UsernameChanged, event::Payload};
use sidechain_events::rpc::{
    FeedKind, ProfileReply, ProfileRequest, UserListReply, UserListRequest,
};
use sidechain_events::{UserId, subjects};
use sidechain_infra::nats;

async fn profile(world: &World, user: UserId, viewer: Option<UserId>) -> ProfileReply {
    let request = ProfileRequest {
        user_id: user.to_string(),
        viewer_user_id: viewer.map(|v| v.to_string()).unwrap_or_default(),
    };
    let reply: ProfileReply = nats::request(
        &world.client,
        subjects::USERS_PROFILE,
        &request,
        Duration::from_secs(5),
    )
    .await
    .expect("profile reply");
    assert!(reply.error.is_none(), "{reply:?}");
    reply
}

async fn list(
    world: &World,
    subject: &str,
    user: UserId,
    limit: u32,
    offset: u32,
) -> UserListReply {
    let request = UserListRequest {
        user_id: user.to_string(),
        viewer_user_id: String::new(),
        limit,
        offset,
    };
    let reply: UserListReply =
        nats::request(&world.client, subject, &request, Duration::from_secs(5))
            .await
            .expect("list reply");
    assert!(reply.error.is_none(), "{reply:?}");
    reply
}

async fn register(world: &World, user: UserId, username: &str) {
    world
        .publish(
            user,
            Payload::UserRegistered(UserRegistered {
                user_id: user.to_string(),
                username: username.to_owned(),
                display_name: username.to_uppercase(),
            }),
        )
        .await;
}

fn ids(reply: &UserListReply) -> Vec<String> {
    reply.users.iter().map(|u| u.id.clone()).collect()
}

#[tokio::test]
async fn follower_counts_are_exact_under_repeated_and_concurrent_follows() {
    let world = World::start().await;
    let service = world.start_service(world.source()).await;
    let star = UserId::new();
    register(&world, star, "star").await;
    let fans: Vec<UserId> = (0..8).map(|_| UserId::new()).collect();
    for (i, fan) in fans.iter().enumerate() {
        register(&world, *fan, &format!("fan{i}")).await;
    }
    // Every fan follows three times, all at once (distinct events, as three requests would be).
    let follows = fans.iter().flat_map(|fan| {
        let world = &world;
        (0..3).map(move |_| world.follow(*fan, star))
    });
    futures::future::join_all(follows).await;
    // Two fans leave, one of them twice; one comes back.
    world.unfollow(fans[0], star).await;
    world.unfollow(fans[1], star).await;
    world.unfollow(fans[1], star).await;
    world.follow(fans[0], star).await;

    let counts = profile(&world, star, Some(fans[0])).await;
    assert_eq!(counts.follower_count, 7);
    assert_eq!(counts.following_count, 0);
    assert!(counts.is_following, "fans[0] follows star again");
    assert!(!counts.follows_you);
    let of_fan = profile(&world, fans[2], Some(star)).await;
    assert_eq!(of_fan.following_count, 1);
    assert!(of_fan.follows_you);

    // Pages: newest relation first (fans[0] came back last), every follower once.
    let first = list(&world, subjects::USERS_FOLLOWERS, star, 5, 0).await;
    assert_eq!(first.total, 7);
    assert!(first.has_more);
    assert_eq!(first.users[0].id, fans[0].to_string());
    assert_eq!(first.users[0].username, "fan0");
    assert_eq!(first.users[0].following_count, 1);
    let second = list(&world, subjects::USERS_FOLLOWERS, star, 5, 5).await;
    assert!(!second.has_more);
    let mut all = ids(&first);
    all.extend(ids(&second));
    let mut expected: Vec<String> = fans
        .iter()
        .filter(|f| **f != fans[1])
        .map(ToString::to_string)
        .collect();
    all.sort();
    expected.sort();
    assert_eq!(all, expected);
    let following = list(&world, subjects::USERS_FOLLOWING, fans[3], 20, 0).await;
    assert_eq!(ids(&following), vec![star.to_string()]);
    assert_eq!(following.users[0].follower_count, 7);

    // The read models rebuilt from the stream give the same answers.
    world.wipe_redis().await;
    // Any new event makes the applier notice the empty Redis and replay the stream.
    register(&world, UserId::new(), "newcomer").await;
    world.settled().await;
    let again = list(&world, subjects::USERS_FOLLOWERS, star, 5, 0).await;
    assert_eq!((again.total, ids(&again)), (7, ids(&first)));
    assert_eq!(profile(&world, star, None).await.follower_count, 7);
    service.stop().await;
}

#[tokio::test]
async fn profile_edits_and_username_changes_reach_lists_and_feed_authors() {
    let world = World::start().await;
    let service = world.start_service(world.source()).await;
    let (author, reader) = (UserId::new(), UserId::new());
    register(&world, author, "before").await;
    register(&world, reader, "reader").await;
    world.follow(reader, author).await;
    world.post(author, &["techno"]).await;
    world
        .publish(
            author,
            Payload::ProfileUpdated(ProfileUpdated {
                display_name: "Shown".into(),
                bio: "bio".into(),
                avatar_url: "https://cdn.example/a.png".into(),
            }),
        )
        .await;
    world
        .publish(
            author,
            Payload::UsernameChanged(UsernameChanged {
                old_username: "before".into(),
                new_username: "after".into(),
            }),
        )
        .await;
    world.settled().await;

    let following = list(&world, subjects::USERS_FOLLOWING, reader, 20, 0).await;
    let shown = &following.users[0];
    assert_eq!(
        (
            shown.username.as_str(),
            shown.display_name.as_str(),
            shown.avatar_url.as_str()
        ),
        ("after", "Shown", "https://cdn.example/a.png")
    );
    assert_eq!(profile(&world, author, None).await.post_count, 1);
    let feed = world
        .feed(FeedKind::User, Some(reader), Some(author), 10, 0)
        .await;
    let item = &feed.items[0];
    assert_eq!(item.author_avatar_url, "https://cdn.example/a.png");
    assert_eq!(item.post.as_ref().expect("post").username, "after");
    service.stop().await;
}
