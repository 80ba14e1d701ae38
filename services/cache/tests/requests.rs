//! Sessions, lookups and comments over NATS request/reply, against real servers.

mod common;

use std::time::Duration;

use common::World;
use futures::StreamExt as _;
use prost::Message as _;
use redis::AsyncCommands as _;
use sidechain_events::events::{Comment, Logout, PostDeleted, SessionsEnded, event::Payload};
use sidechain_events::rpc::{
    CommentsReply, CommentsRequest, LookupReply, LookupRequest, SessionReply, SessionRequest,
    SessionStatus, TokenRevoked, UserRecord, lookup_request::Target,
};
use sidechain_events::{CommentId, PostId, UserId, subjects};
use sidechain_infra::nats;
use sidechain_infra::users::{UserStore, revoke_in_record};

async fn session(world: &World, request: &SessionRequest) -> SessionReply {
    nats::request(
        &world.client,
        subjects::AUTH_SESSION,
        request,
        Duration::from_secs(5),
    )
    .await
    .expect("session reply")
}

async fn lookup_post(world: &World, post: PostId) -> LookupReply {
    let request = LookupRequest {
        target: Some(Target::PostId(post.to_string())),
        ..Default::default()
    };
    nats::request(
        &world.client,
        subjects::LOOKUP_POST,
        &request,
        Duration::from_secs(5),
    )
    .await
    .expect("lookup reply")
}

#[tokio::test]
async fn sessions_are_checked_cached_and_revoked_by_logout() {
    let world = World::start().await;
    let service = world.start_service(world.source()).await;
    let user = UserId::new();
    let request = SessionRequest {
        token_sha256: "a".repeat(64),
        token_id: "jti-1".into(),
        user_id: user.to_string(),
        expires_at_ms: sidechain_events::now_ms() + 3_600_000,
        issued_at_ms: sidechain_events::now_ms() - 60_000,
    };
    assert_eq!(
        session(&world, &request).await.status,
        SessionStatus::UnknownUser as i32
    );

    register(&world, user, "dana").await;
    let active = session(&world, &request).await;
    assert_eq!(active.status, SessionStatus::Active as i32);
    assert_eq!(active.user.expect("profile").username, "dana");
    let ttl: i64 = world
        .redis()
        .await
        .pttl(format!("jwt_cache:{}", request.token_sha256))
        .await
        .expect("pttl");
    assert!((1..=300_000).contains(&ttl), "jwt_cache TTL {ttl} ms");

    let mut revocations = world
        .client
        .subscribe(subjects::AUTH_REVOKED)
        .await
        .expect("subscribe");
    world
        .publish(
            user,
            Payload::Logout(Logout {
                token_id: request.token_id.clone(),
                token_sha256: request.token_sha256.clone(),
                expires_at_ms: request.expires_at_ms,
            }),
        )
        .await;
    let notice = tokio::time::timeout(Duration::from_secs(5), revocations.next())
        .await
        .expect("broadcast in time")
        .expect("message");
    assert_eq!(
        TokenRevoked::decode(notice.payload)
            .expect("decodes")
            .token_sha256,
        request.token_sha256
    );
    assert_eq!(
        session(&world, &request).await.status,
        SessionStatus::Revoked as i32
    );
    let cached: bool = world
        .redis()
        .await
        .exists(format!("jwt_cache:{}", request.token_sha256))
        .await
        .expect("exists");
    assert!(!cached, "logout deletes the cached session");

    // The edge also writes the revocation into the account; that copy survives a wipe.
    UserStore::new(world.js.clone())
        .modify(user, |record| {
            revoke_in_record(
                record,
                &request.token_id,
                request.expires_at_ms,
                sidechain_events::now_ms(),
            );
        })
        .await
        .expect("modified");
    world.wipe_redis().await;
    assert_eq!(
        session(&world, &request).await.status,
        SessionStatus::Revoked as i32
    );
    service.stop().await;
}

#[tokio::test]
async fn ending_every_session_revokes_older_tokens_even_after_a_redis_wipe() {
    let world = World::start().await;
    let service = world.start_service(world.source()).await;
    let user = UserId::new();
    let now = sidechain_events::now_ms();
    let token = |name: &str, issued_at_ms: i64| SessionRequest {
        token_sha256: name.repeat(64),
        token_id: format!("jti-{name}"),
        user_id: user.to_string(),
        expires_at_ms: now + 3_600_000,
        issued_at_ms,
    };
    let (old, new) = (token("o", now - 60_000), token("n", now + 1_000));
    let users = UserStore::new(world.js.clone());
    register(&world, user, "erin").await;
    // Cached as active first, so the check must look past jwt_cache.
    assert_eq!(
        session(&world, &old).await.status,
        SessionStatus::Active as i32
    );

    let mut revocations = world
        .client
        .subscribe(subjects::AUTH_REVOKED)
        .await
        .expect("subscribe");
    world
        .publish(
            user,
            Payload::SessionsEnded(SessionsEnded {
                valid_after_ms: now,
                reason: "logout_all".into(),
            }),
        )
        .await;
    let notice = tokio::time::timeout(Duration::from_secs(5), revocations.next())
        .await
        .expect("broadcast in time")
        .expect("message");
    let notice = TokenRevoked::decode(notice.payload).expect("decodes");
    assert_eq!(
        (notice.user_id, notice.valid_after_ms),
        (user.to_string(), now)
    );
    assert_eq!(
        session(&world, &old).await.status,
        SessionStatus::Revoked as i32
    );
    assert_eq!(
        session(&world, &new).await.status,
        SessionStatus::Active as i32
    );

    // The account's own epoch (written by the edge) holds when Redis loses everything.
    users
        .modify(user, |record| record.sessions_valid_after_ms = now)
        .await
        .expect("modified")
        .expect("exists");
    world.wipe_redis().await;
    assert_eq!(
        session(&world, &old).await.status,
        SessionStatus::Revoked as i32
    );
    service.stop().await;
}

#[tokio::test]
async fn a_post_is_found_right_after_it_is_published_and_not_after_deletion() {
    let world = World::start().await;
    let service = world.start_service(world.source()).await;
    let author = UserId::new();
    // No waiting: the lookup's barrier catches the read models up.
    let post = world.post(author, &["techno"]).await;
    let found = lookup_post(&world, post).await;
    assert!(found.found);
    assert_eq!(found.owner_user_id, author.to_string());

    world
        .publish(
            author,
            Payload::PostDeleted(PostDeleted {
                post_id: post.to_string(),
            }),
        )
        .await;
    world.settled().await;
    assert!(!lookup_post(&world, post).await.found);
    assert!(!lookup_post(&world, PostId::new()).await.found);
    service.stop().await;
}

#[tokio::test]
async fn comments_are_listed_oldest_first_and_found_by_id() {
    let world = World::start().await;
    let service = world.start_service(world.source()).await;
    let author = UserId::new();
    let post = world.post(author, &["techno"]).await;
    let mut comment_ids = Vec::new();
    for text in ["first", "second", "third"] {
        let id = CommentId::new();
        comment_ids.push(id);
        world
            .publish(
                UserId::new(),
                Payload::Comment(Comment {
                    comment_id: id.to_string(),
                    post_id: post.to_string(),
                    content: text.into(),
                    parent_id: String::new(),
                }),
            )
            .await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    world.settled().await;
    let request = CommentsRequest {
        post_id: post.to_string(),
        limit: 2,
        offset: 0,
    };
    let page: CommentsReply = nats::request(
        &world.client,
        subjects::COMMENTS_LIST,
        &request,
        Duration::from_secs(5),
    )
    .await
    .expect("reply");
    let texts: Vec<&str> = page.comments.iter().map(|c| c.content.as_str()).collect();
    assert_eq!(texts, vec!["first", "second"]);
    assert!(page.has_more);

    let lookup = LookupRequest {
        target: Some(Target::CommentId(comment_ids[1].to_string())),
        ..Default::default()
    };
    let found: LookupReply = nats::request(
        &world.client,
        subjects::LOOKUP_COMMENT,
        &lookup,
        Duration::from_secs(5),
    )
    .await
    .expect("reply");
    assert!(found.found);
    assert_eq!(found.post_id, post.to_string());

    let timeline_counts = world
        .feed(
            sidechain_events::rpc::FeedKind::User,
            None,
            Some(author),
            10,
            0,
        )
        .await;
    assert_eq!(
        timeline_counts.items[0]
            .counts
            .as_ref()
            .expect("counts")
            .comments,
        3
    );
    service.stop().await;
}

/// Stores an account for `user` in the `users` bucket, as the edge does at registration.
async fn register(world: &World, user: UserId, username: &str) {
    UserStore::new(world.js.clone())
        .register(&UserRecord {
            id: user.to_string(),
            username: username.into(),
            email: format!("{username}@example.com"),
            display_name: username.into(),
            password_hash: "x".into(),
            created_at_ms: 1,
            ..UserRecord::default()
        })
        .await
        .expect("registered");
}
