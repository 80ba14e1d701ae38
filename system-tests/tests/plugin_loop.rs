//! The plugin's core loop end to end, in the order the plugin makes its calls
//! (`zfogg/sidechain` at 485c970: `AuthClient.cpp`, `PluginEditor.cpp`, `FeedClient.cpp`,
//! `SocialClient.cpp`, `CommentsClient.cpp`, `ProfileClient.cpp`): register → who am I → browse
//! unified → play → like through `/feed/like` → follow → comment → refresh with the token in the
//! body → the old token refused → the profile shows the counts. Every service runs, with the
//! Gorse double.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sidechain_system_tests::{System, eventually, send};

const PASSWORD: &str = "correct horse battery";

/// As `NetworkClient` sends a request: JSON content type, bearer token when signed in.
fn call(
    system: &System,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> sidechain_api_client::Call<Value> {
    let call = system
        .api
        .request(method, path)
        .header("content-type", "application/json");
    match token {
        Some(token) => call.bearer(token),
        None => call,
    }
}

#[tokio::test]
async fn the_plugin_core_loop_in_its_own_order() {
    let system = System::start(&[]).await;
    // Someone to follow, with a loop in the feeds.
    let author = system.register("loopmaker").await;
    let post = system.post(&author, "house").await;

    // Register, as AuthClient::registerAccount sends it.
    let registered = send(
        call(&system, Method::POST, "/api/v1/auth/register", None).json(&json!({
            "email": "producer@example.com", "username": "producer",
            "password": PASSWORD, "display_name": "Producer"
        })),
    )
    .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{:?}",
        registered.body
    );
    let token = registered.body["auth"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let my_id = registered.body["auth"]["user"]["id"]
        .as_str()
        .expect("id")
        .to_owned();

    // Who am I: gates the whole UI.
    let me = send(call(&system, Method::GET, "/api/v1/users/me", Some(&token))).await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    assert_eq!(me.body["id"], my_id.as_str());
    assert_eq!(me.body["username"], "producer");

    // Browse unified until the loop is there.
    eventually(
        "the loop in the unified feed",
        Duration::from_secs(10),
        || async {
            let feed = send(call(
                &system,
                Method::GET,
                "/api/v1/feed/unified?limit=20&offset=0",
                Some(&token),
            ))
            .await;
            feed.status == StatusCode::OK
                && feed.body["activities"]
                    .as_array()
                    .is_some_and(|items| items.iter().any(|item| item["id"] == post.as_str()))
        },
    )
    .await;

    // Play, listen, like the plugin's way, follow, comment.
    for (path, body) in [
        ("/api/v1/social/play", json!({"activity_id": post})),
        (
            "/api/v1/social/listen-duration",
            json!({"activity_id": post, "duration": 8.0}),
        ),
        ("/api/v1/feed/like", json!({"activity_id": post})),
        (
            "/api/v1/social/follow",
            json!({"target_user_id": author.id}),
        ),
    ] {
        let reply = send(call(&system, Method::POST, path, Some(&token)).json(&body)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {:?}", reply.body);
    }
    let comment = send(
        call(
            &system,
            Method::POST,
            &format!("/api/v1/posts/{post}/comments"),
            Some(&token),
        )
        .json(&json!({"content": "huge"})),
    )
    .await;
    assert_eq!(comment.status, StatusCode::CREATED, "{:?}", comment.body);

    // The feed shows what this user did.
    eventually("like and play counted", Duration::from_secs(10), || async {
        let feed = send(call(
            &system,
            Method::GET,
            "/api/v1/feed/unified?limit=20&offset=0",
            Some(&token),
        ))
        .await;
        feed.body["activities"].as_array().is_some_and(|items| {
            items.iter().any(|item| {
                item["id"] == post.as_str()
                    && item["is_liked"] == true
                    && item["like_count"] == 1
                    && item["comment_count"] == 1
                    && item["play_count"].as_u64().is_some_and(|plays| plays >= 1)
            })
        })
    })
    .await;

    // Refresh with the token in the body and no Authorization header.
    let refreshed = send(
        system
            .api
            .request(Method::POST, "/api/v1/auth/refresh")
            .header("content-type", "application/json")
            .json(&json!({"token": token})),
    )
    .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{:?}", refreshed.body);
    let fresh = refreshed.body["token"].as_str().expect("token").to_owned();
    assert_eq!(refreshed.body["user"]["id"], my_id.as_str());
    let old = send(call(&system, Method::GET, "/api/v1/users/me", Some(&token))).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED, "{:?}", old.body);

    // The profiles show the counts, read with the new token.
    eventually(
        "the follow in both profiles",
        Duration::from_secs(10),
        || async {
            let theirs = send(call(
                &system,
                Method::GET,
                &format!("/api/v1/users/{}/profile", author.id),
                Some(&fresh),
            ))
            .await;
            let mine = send(call(&system, Method::GET, "/api/v1/users/me", Some(&fresh))).await;
            theirs.body["follower_count"] == 1
                && theirs.body["is_following"] == true
                && theirs.body["post_count"] == 1
                && mine.body["following_count"] == 1
        },
    )
    .await;
    system.stop().await;
}
