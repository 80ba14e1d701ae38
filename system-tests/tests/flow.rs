//! One user journey through the whole system: HTTP → JetStream → feedback → Gorse double, and
//! → cache → feeds.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use sidechain_system_tests::{Feed, NewComment, Play, System, eventually, send};

#[tokio::test]
async fn register_post_follow_like_play_comment_and_see_it_everywhere() {
    let system = System::start(&[]).await;
    let alice = system.register("alice").await;
    let bob = system.register("bob").await;

    let post = system.post(&bob, "Techno").await;
    let follow = send(system.api.social_follow(&bob.id).bearer(&alice.token)).await;
    assert_eq!(follow.status, StatusCode::OK, "{:?}", follow.body);
    // The like comes right after the post: the edge's lookup waits for the read models.
    let like = send(system.api.like(&post, Some("🔥")).bearer(&alice.token)).await;
    assert_eq!(like.status, StatusCode::OK, "{:?}", like.body);
    assert_eq!(like.body["action"], "like");
    let listened = Play {
        duration: 8.0,
        completed: true,
    };
    let play = send(system.api.play(&post, listened).bearer(&alice.token)).await;
    assert_eq!(play.status, StatusCode::OK, "{:?}", play.body);
    let huge = NewComment {
        content: "huge".to_owned(),
        parent_id: None,
    };
    let comment = send(system.api.comment(&post, &huge).bearer(&alice.token)).await;
    assert_eq!(comment.status, StatusCode::CREATED, "{:?}", comment.body);

    // Each write is exactly one event on the stream.
    let events = system.events().await;
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for (subject, _) in &events {
        *kinds.entry(subject.as_str()).or_default() += 1;
    }
    assert_eq!(
        kinds,
        BTreeMap::from([
            ("events.comment", 1),
            ("events.follow", 1),
            ("events.like", 1),
            ("events.play", 1),
            ("events.post_created", 1),
            ("events.user_registered", 2),
        ])
    );

    // Alice's timeline shows Bob's post with live counts, in the plugin's shape.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let timeline = loop {
        let body = send(system.api.feed(Feed::Timeline, None).bearer(&alice.token))
            .await
            .body;
        if body["activities"][0]["like_count"] == 1 && body["activities"][0]["comment_count"] == 1 {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timeline never showed the counts: {body}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let item = &timeline["activities"][0];
    assert_eq!(item["id"], post.as_str());
    assert_eq!(item["username"], "bob");
    assert_eq!(item["genre"], "techno");
    assert_eq!(item["genres"], json!(["techno"]));
    assert_eq!(item["play_count"], 1);
    assert_eq!(item["is_following"], true);
    assert_eq!(item["is_own_post"], false);
    assert_eq!(item["source"], "following");
    assert!(item["time"].as_str().is_some_and(|t| t.contains('T')));
    assert_eq!(
        timeline["meta"],
        json!({"limit": 20, "offset": 0, "count": 1, "has_more": false})
    );

    let comments = send(system.api.comments(&post, None).bearer(&alice.token)).await;
    assert_eq!(comments.body["comments"][0]["content"], "huge");

    // The feedback reached Gorse: Alice's like (and her completed play, also a like), the
    // comment, the follow, the item and both users.
    eventually("feedback in Gorse", Duration::from_secs(10), || async {
        let record = system.gorse.record();
        record
            .feedback
            .contains_key(&("like".into(), alice.id.clone(), post.clone()))
            && record
                .feedback
                .contains_key(&("comment".into(), alice.id.clone(), post.clone()))
            && record.feedback.contains_key(&(
                "follow".into(),
                alice.id.clone(),
                format!("user:{}", bob.id),
            ))
            && record.items.contains_key(&post)
            && record.users.contains_key(&alice.id)
    })
    .await;
    let item = &system.gorse.record().items[&post];
    assert_eq!(
        item["Categories"],
        json!(["techno", "bpm_120", "key_a_minor"])
    );

    // Unfollowing empties Alice's timeline.
    let unfollow = send(system.api.unfollow(&bob.id).bearer(&alice.token)).await;
    assert_eq!(unfollow.status, StatusCode::OK);
    eventually(
        "the timeline is empty after unfollow",
        Duration::from_secs(10),
        || async {
            let body = send(system.api.feed(Feed::Timeline, None).bearer(&alice.token))
                .await
                .body;
            body["activities"].as_array().is_some_and(Vec::is_empty)
        },
    )
    .await;

    // Bob deletes the post; likes on it are refused afterwards.
    let deleted = send(system.api.delete_post(&post).bearer(&alice.token)).await;
    assert_eq!(
        deleted.status,
        StatusCode::FORBIDDEN,
        "only the author deletes"
    );
    let deleted = send(system.api.delete_post(&post).bearer(&bob.token)).await;
    assert_eq!(deleted.status, StatusCode::OK);
    system.stop().await;
}

#[tokio::test]
async fn logout_reaches_the_cache_service_and_the_token_stays_dead() {
    let mut system = System::start(&[]).await;
    let carol = system.register("carol").await;
    let me = send(system.api.me().bearer(&carol.token)).await;
    assert_eq!(me.status, StatusCode::OK);
    let out = send(system.api.logout().bearer(&carol.token)).await;
    assert_eq!(out.status, StatusCode::OK);
    let after = send(system.api.me().bearer(&carol.token)).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.body["error"], "token_revoked");

    // An edge started after the logout has nothing in memory: it asks the cache service,
    // which applied the logout event and refuses the token.
    let fresh = system.another_edge().await;
    let mut refused = None;
    for _ in 0..100 {
        let reply = send(fresh.me().bearer(&carol.token)).await;
        if reply.status != StatusCode::SERVICE_UNAVAILABLE {
            refused = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = refused.expect("the fresh edge answered");
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.body["error"], "token_revoked");
    let metrics = system.metrics(2).await;
    assert!(
        metrics
            .contains("sidechain_cache_session_checks_total{feed=\"session\",result=\"revoked\"}"),
        "{metrics}"
    );
    system.stop().await;
}
