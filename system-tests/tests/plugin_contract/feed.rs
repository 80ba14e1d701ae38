//! Feeds, likes, reactions, plays, listens, recommendation clicks, comments, downloads and a
//! user's posts, as `plugin/src/network/api/{FeedClient,SocialClient,CommentsClient,
//! UploadDownloadClient,ProfileClient}.cpp` send them and `plugin/src/models/{FeedPost.cpp,
//! Comment.h}` read them.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sidechain_system_tests::{Reply, System, User, eventually, send};

use crate::shape::{Json, expect_fields};

const FEED_CLIENT: &str = "plugin/src/network/api/FeedClient.cpp";
const FEED_POST: &str = "plugin/src/models/FeedPost.cpp";
const SOCIAL_CLIENT: &str = "plugin/src/network/api/SocialClient.cpp";
const COMMENTS_CLIENT: &str = "plugin/src/network/api/CommentsClient.cpp";
const COMMENT_MODEL: &str = "plugin/src/models/Comment.h";
const DOWNLOAD_CLIENT: &str = "plugin/src/network/api/UploadDownloadClient.cpp";
const PROFILE_CLIENT: &str = "plugin/src/network/api/ProfileClient.cpp";

/// What `from_json(FeedPost)` reads with a type it would throw on. `waveform_url` and `daw`
/// are absent from the list because they may be `null`, which the plugin reads as its default.
const POST_FIELDS: &[(&str, Json)] = &[
    ("id", Json::Str),
    ("audio_url", Json::Str),
    ("user_id", Json::Str),
    ("username", Json::Str),
    ("filename", Json::Str),
    ("duration_seconds", Json::Num),
    ("bpm", Json::Int),
    ("key", Json::Str),
    ("genres", Json::Array),
    ("genre", Json::Str),
    ("like_count", Json::Int),
    ("play_count", Json::Int),
    ("comment_count", Json::Int),
    ("save_count", Json::Int),
    ("repost_count", Json::Int),
    ("download_count", Json::Int),
    ("is_liked", Json::Bool),
    ("is_saved", Json::Bool),
    ("is_reposted", Json::Bool),
    ("is_following", Json::Bool),
    ("is_own_post", Json::Bool),
    ("time", Json::Str),
    ("reaction_counts", Json::Object),
    ("source", Json::Str),
];

/// What `from_json(Comment)` requires or reads typed.
const COMMENT_FIELDS: &[(&str, Json)] = &[
    ("id", Json::Str),
    ("post_id", Json::Str),
    ("user_id", Json::Str),
    ("content", Json::Str),
    ("username", Json::Str),
    ("is_own_comment", Json::Bool),
    ("can_edit", Json::Bool),
    ("like_count", Json::Int),
    ("created_at", Json::Str),
];

/// A call as the plugin makes it: JSON content type, bearer token, no `Idempotency-Key`.
async fn call(
    system: &System,
    user: &User,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    let mut request = system
        .api
        .request(method, path)
        .header("content-type", "application/json")
        .bearer(&user.token);
    if let Some(body) = body {
        request = request.raw_body(body.to_string());
    }
    send(request).await
}

fn item<'a>(page: &'a Value, post: &str) -> Option<&'a Value> {
    page["activities"]
        .as_array()?
        .iter()
        .find(|p| p["id"] == post)
}

#[tokio::test]
async fn feeds_likes_reactions_plays_listens_and_clicks_as_the_plugin_sends_them() {
    let system = System::start(&[]).await;
    let author = system.register("loopmaker").await;
    let fan = system.register("listener").await;
    let post = system.post(&author, "techno").await;

    // FeedClient::likePost: `{"activity_id"}` (and `emoji` only when not empty); twice, as a
    // retry would.
    for _ in 0..2 {
        let liked = call(
            &system,
            &fan,
            Method::POST,
            "/api/v1/feed/like",
            Some(json!({"activity_id": post})),
        )
        .await;
        assert_eq!(liked.status, StatusCode::OK, "{}", liked.body);
        expect_fields(&liked.body, FEED_CLIENT, &[("is_liked", Json::Bool)]);
        assert_eq!(liked.body["is_liked"], true);
    }
    // AppStore::addReaction likes with an emoji through the same route.
    let reacted = call(
        &system,
        &fan,
        Method::POST,
        "/api/v1/feed/like",
        Some(json!({"activity_id": post, "emoji": "🔥"})),
    )
    .await;
    assert_eq!(reacted.status, StatusCode::OK, "{}", reacted.body);
    // SocialClient::trackPlay, trackListenDuration (a double), FeedClient::
    // trackRecommendationClick (position an int, completed a bool, play_duration a double).
    let writes = [
        (
            "/api/v1/social/play",
            json!({"activity_id": post}),
            SOCIAL_CLIENT,
        ),
        (
            "/api/v1/social/listen-duration",
            json!({"activity_id": post, "duration": 7.5}),
            SOCIAL_CLIENT,
        ),
        (
            "/api/v1/recommendations/click",
            json!({"post_id": post, "source": "for_you", "position": 2, "completed": true, "play_duration": 7.5}),
            FEED_CLIENT,
        ),
    ];
    for (path, body, source) in writes {
        let reply = call(&system, &fan, Method::POST, path, Some(body)).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{source} {path}: {}",
            reply.body
        );
    }

    // The four feeds the plugin browses, with `limit` and `offset` as it sends them.
    let unified = "/api/v1/feed/unified?limit=20&offset=0";
    eventually(
        "the like and the play in the unified feed",
        Duration::from_secs(10),
        || async {
            let page = call(&system, &fan, Method::GET, unified, None).await.body;
            item(&page, &post)
                .is_some_and(|p| p["play_count"] == 1 && p["reaction_counts"]["🔥"] == 1)
        },
    )
    .await;
    for path in [
        unified,
        "/api/v1/feed/trending?limit=20&offset=0",
        "/api/v1/recommendations/for-you?limit=20&offset=0",
        "/api/v1/feed/discovery?limit=20&offset=0",
    ] {
        let page = call(&system, &fan, Method::GET, path, None).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        expect_fields(
            &page.body,
            FEED_CLIENT,
            &[
                ("activities", Json::Array),
                ("meta.count", Json::Int),
                ("meta.has_more", Json::Bool),
            ],
        );
        for entry in page.body["activities"].as_array().expect("activities") {
            expect_fields(entry, FEED_POST, POST_FIELDS);
        }
    }
    let page = call(&system, &fan, Method::GET, unified, None).await.body;
    let seen = item(&page, &post).expect("the post");
    expect_fields(seen, FEED_POST, POST_FIELDS);
    assert_eq!(seen["bpm"], 124, "an integer, as FeedPost.h holds it");
    assert_eq!(seen["like_count"], 1, "liking twice is one like");
    assert_eq!(seen["is_liked"], true);
    assert_eq!(seen["is_own_post"], false);

    // FeedClient::unlikePost, then the flag and count follow.
    let unliked = call(
        &system,
        &fan,
        Method::POST,
        "/api/v1/feed/unlike",
        Some(json!({"activity_id": post})),
    )
    .await;
    assert_eq!(unliked.status, StatusCode::OK, "{}", unliked.body);
    assert_eq!(unliked.body["is_liked"], false);
    eventually(
        "the unlike in the unified feed",
        Duration::from_secs(10),
        || async {
            let page = call(&system, &fan, Method::GET, unified, None).await.body;
            item(&page, &post).is_some_and(|p| {
                p["is_liked"] == false && p["like_count"] == 0 && p["reaction_counts"] == json!({})
            })
        },
    )
    .await;

    // What the writes stored: a listen of 7.5 s of an 8 s loop is complete.
    let events = system.events().await;
    let kinds: Vec<&str> = events.iter().map(|(s, _)| s.as_str()).collect();
    for kind in [
        "events.play",
        "events.listen",
        "events.recommendation_click",
        "events.unlike",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let listen = events.iter().find_map(|(_, e)| match &e.payload {
        Some(sidechain_events::events::event::Payload::Listen(l)) => Some(l.clone()),
        _ => None,
    });
    assert!(listen.expect("listen").completed);
    system.stop().await;
}

#[tokio::test]
async fn comments_and_downloads_as_the_plugin_sends_and_reads_them() {
    let system = System::start(&[]).await;
    let author = system.register("loopmaker").await;
    let fan = system.register("listener").await;
    let post = system.post(&author, "house").await;
    let comments = format!("/api/v1/posts/{post}/comments");

    // CommentsClient::createComment: `{"content"}`, `parent_id` only for a reply; the reply is
    // parsed as a top-level comment object.
    let first = call(
        &system,
        &fan,
        Method::POST,
        &comments,
        Some(json!({"content": "big tune"})),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    expect_fields(&first.body, COMMENT_MODEL, COMMENT_FIELDS);
    assert_eq!(first.body["is_own_comment"], true);
    let first_id = first.body["id"].as_str().expect("id").to_owned();
    let reply = call(
        &system,
        &author,
        Method::POST,
        &comments,
        Some(json!({"content": "thanks", "parent_id": first_id})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    expect_fields(&reply.body, COMMENT_MODEL, &[("parent_id", Json::Str)]);

    // CommentsClient::getComments: `?limit&offset`, reads `total_count` and `has_more`.
    let list = format!("{comments}?limit=1&offset=0");
    eventually("both comments listed", Duration::from_secs(10), || async {
        call(&system, &fan, Method::GET, &list, None).await.body["total_count"] == 2
    })
    .await;
    let page = call(&system, &fan, Method::GET, &list, None).await;
    expect_fields(
        &page.body,
        COMMENTS_CLIENT,
        &[
            ("comments", Json::Array),
            ("total_count", Json::Int),
            ("has_more", Json::Bool),
        ],
    );
    assert_eq!(page.body["has_more"], true);
    let listed = &page.body["comments"][0];
    expect_fields(listed, COMMENT_MODEL, COMMENT_FIELDS);
    assert_eq!(
        listed["is_own_comment"], true,
        "the fan wrote the first comment"
    );

    // UploadDownloadClient::getPostDownloadInfo: a POST without a body, which JUCE sends as a
    // GET; then the POST form the web app sends.
    let download = format!("/api/v1/posts/{post}/download");
    let got = call(&system, &fan, Method::GET, &download, None).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.body);
    expect_fields(
        &got.body,
        DOWNLOAD_CLIENT,
        &[
            ("download_url", Json::Str),
            ("filename", Json::Str),
            ("download_count", Json::Int),
        ],
    );
    assert_eq!(got.body["download_url"], "https://cdn.example/loop.wav");
    assert_eq!(got.body["download_count"], 1);
    let posted = call(&system, &fan, Method::POST, &download, None).await;
    assert_eq!(posted.status, StatusCode::OK, "{}", posted.body);
    assert_eq!(posted.body["filename"], got.body["filename"]);
    system.stop().await;
}

#[tokio::test]
async fn a_users_posts_page_as_the_profile_reads_it_and_a_cursor_survives_new_posts() {
    let system = System::start(&[]).await;
    let author = system.register("loopmaker").await;
    let fan = system.register("listener").await;
    let mut posts = Vec::new();
    for _ in 0..3 {
        posts.push(system.post(&author, "dub").await);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    posts.reverse();
    let path = |query: &str| format!("/api/v1/users/{}/posts?{query}", author.id);

    // ProfileClient::getUserPosts: `?limit&offset`, reads `posts` or `activities`, top-level
    // `total` and `has_more`.
    let first_path = path("limit=2&offset=0");
    eventually("three posts listed", Duration::from_secs(10), || async {
        call(&system, &fan, Method::GET, &first_path, None)
            .await
            .body["total"]
            == 3
    })
    .await;
    let first = call(&system, &fan, Method::GET, &first_path, None).await;
    expect_fields(
        &first.body,
        PROFILE_CLIENT,
        &[
            ("activities", Json::Array),
            ("total", Json::Int),
            ("has_more", Json::Bool),
        ],
    );
    for entry in first.body["activities"].as_array().expect("activities") {
        expect_fields(entry, FEED_POST, POST_FIELDS);
    }
    let ids = |page: &Value| -> Vec<String> {
        page["activities"]
            .as_array()
            .expect("activities")
            .iter()
            .map(|p| p["id"].as_str().expect("id").to_owned())
            .collect()
    };
    assert_eq!(ids(&first.body), posts[..2].to_vec());

    // Two posts arrive before page 2: by cursor it is exactly the one post left.
    for _ in 0..2 {
        system.post(&author, "dub").await;
    }
    let cursor = first.body["meta"]["next_cursor"]
        .as_str()
        .expect("next_cursor")
        .to_owned();
    let second = call(
        &system,
        &fan,
        Method::GET,
        &path(&format!("limit=2&cursor={cursor}")),
        None,
    )
    .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(ids(&second.body), posts[2..].to_vec());
    assert_eq!(second.body["has_more"], false);
    system.stop().await;
}
