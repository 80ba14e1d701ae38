//! `posts.get`: the feedback service asks for posts by id, to write the Gorse items of posts
//! whose `post_created` never reached Gorse.

mod common;

use std::time::Duration;

use common::World;
use sidechain_events::events::{PostDeleted, event::Payload};
use sidechain_events::rpc::{ErrorCode, PostsReply, PostsRequest};
use sidechain_events::{PostId, UserId, subjects};
use sidechain_infra::nats;

async fn posts(world: &World, ids: Vec<String>) -> PostsReply {
    nats::request(
        &world.client,
        subjects::POSTS_GET,
        &PostsRequest { post_ids: ids },
        Duration::from_secs(5),
    )
    .await
    .expect("posts reply")
}

#[tokio::test]
async fn posts_come_back_in_full_deleted_ones_by_id_and_unknown_ones_not_at_all() {
    let world = World::start().await;
    let service = world.start_service(world.source()).await;
    let author = UserId::new();
    let kept = world.post(author, &["house", "techno"]).await;
    let gone = world.post(author, &["ambient"]).await;
    world
        .publish(
            author,
            Payload::PostDeleted(PostDeleted {
                post_id: gone.to_string(),
            }),
        )
        .await;
    world.settled().await;

    let unknown = PostId::new();
    let reply = posts(
        &world,
        vec![
            kept.to_string(),
            gone.to_string(),
            unknown.to_string(),
            "not-a-uuid".into(),
        ],
    )
    .await;
    assert_eq!(reply.error, None);
    let [post] = reply.posts.as_slice() else {
        panic!("one live post expected: {reply:?}");
    };
    // What `post_created` carried (tests/common `World::post`), as the feedback service maps it.
    assert_eq!(post.id, kept.to_string());
    assert_eq!(post.user_id, author.to_string());
    assert_eq!(post.genres, ["house", "techno"]);
    assert_eq!(post.bpm, 120.0);
    assert_eq!(post.key, "C minor");
    assert_eq!(post.title, "loop");
    assert!(post.created_at_ms > 0);
    assert_eq!(reply.deleted_post_ids, [gone.to_string()]);

    let empty = posts(&world, Vec::new()).await;
    assert!(empty.posts.is_empty() && empty.deleted_post_ids.is_empty() && empty.error.is_none());
    service.stop().await;
}

#[tokio::test]
async fn more_ids_than_one_request_may_carry_is_an_invalid_argument() {
    let world = World::start().await;
    let service = world.start_service(world.source()).await;
    let ids = (0..=subjects::POSTS_GET_MAX_IDS)
        .map(|_| PostId::new().to_string())
        .collect();
    let reply = posts(&world, ids).await;
    let error = reply.error.expect("refused");
    assert_eq!(error.code, ErrorCode::InvalidArgument as i32);
    assert!(reply.posts.is_empty());
    service.stop().await;
}
