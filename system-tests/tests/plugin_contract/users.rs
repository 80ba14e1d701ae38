//! Who am I, refresh, profiles, follower/following lists, profile edits and username changes,
//! as the plugin sends and reads them (`zfogg/sidechain` at 485c970).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sidechain_system_tests::{Reply, System, User, eventually, send};

use crate::shape::{Json, expect_fields};

/// `getCurrentUser`, `updateUserProfile` (`/api/v1/users/me`) and their parsing into `User`.
const NETWORK_CLIENT: &str = "plugin/src/network/NetworkClient.cpp";
/// The `User` model's `from_json`: the fields and JSON types every user object is read with.
const USER_MODEL: &str = "plugin/src/models/User.h";
/// `getUser` (`/users/{id}/profile`), `getFollowers`/`getFollowing`, `changeUsername`.
const PROFILE_CLIENT: &str = "plugin/src/network/api/ProfileClient.cpp";
/// `refreshAuthToken`.
const AUTH_CLIENT: &str = "plugin/src/network/api/AuthClient.cpp";
/// The feed post model: `user_avatar_url`.
const FEED_POST: &str = "plugin/src/models/FeedPost.cpp";
/// `followUserObservable`: `is_following`, `follower_count` of the follow reply.
const SOCIAL_CLIENT: &str = "plugin/src/network/api/SocialClient.cpp";
/// The comment model: `user_avatar_url`.
const COMMENT_MODEL: &str = "plugin/src/models/Comment.h";

/// The fields `User::from_json` reads that we answer (required `id`, `username`; the rest
/// optional with defaults, but when present they must have its types).
const USER_FIELDS: &[(&str, Json)] = &[
    ("id", Json::Str),
    ("username", Json::Str),
    ("display_name", Json::Str),
    ("bio", Json::Str),
    ("avatar_url", Json::Str),
    ("follower_count", Json::Int),
    ("following_count", Json::Int),
    ("post_count", Json::Int),
    ("is_private", Json::Bool),
    ("is_verified", Json::Bool),
    ("is_following", Json::Bool),
    ("follows_you", Json::Bool),
    ("created_at", Json::Str),
];

/// A request as `NetworkClient::makeRequestWithRetry` sends it: `Content-Type:
/// application/json` always, the bearer token when signed in, and JUCE's method choice (a
/// body makes it a POST).
fn plugin(
    system: &System,
    method: Method,
    path: &str,
    token: &str,
) -> sidechain_api_client::Call<Value> {
    system
        .api
        .request(method, path)
        .header("content-type", "application/json")
        .bearer(token)
}

async fn get(system: &System, path: &str, token: &str) -> Reply {
    send(plugin(system, Method::GET, path, token)).await
}

async fn follow(system: &System, follower: &User, target: &User) -> Reply {
    let reply = send(
        plugin(
            system,
            Method::POST,
            "/api/v1/social/follow",
            &follower.token,
        )
        .json(&json!({ "target_user_id": target.id })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    expect_fields(
        &reply.body,
        SOCIAL_CLIENT,
        &[("is_following", Json::Bool), ("follower_count", Json::Int)],
    );
    reply
}

#[tokio::test]
async fn who_am_i_is_the_flat_user_with_counts() {
    let system = System::start(&[]).await;
    let user = system.register("whoami").await;
    let me = get(&system, "/api/v1/users/me", &user.token).await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    expect_fields(&me.body, USER_MODEL, USER_FIELDS);
    assert_eq!(me.body["id"], user.id.as_str());
    assert_eq!(me.body["username"], "whoami");
    assert_eq!(me.body["follower_count"], 0);
    // The web app's `/auth/me` keeps its `{"user": …}` shape.
    let auth_me = get(&system, "/api/v1/auth/me", &user.token).await;
    assert_eq!(auth_me.body["user"]["id"], user.id.as_str());
    system.stop().await;
}

#[tokio::test]
async fn refresh_with_the_token_in_the_body_and_no_header() {
    let system = System::start(&[]).await;
    let user = system.register("refresher").await;
    // refreshAuthToken: POST {token}, Content-Type JSON, requireAuth = false (no header).
    let refreshed = send(
        system
            .api
            .request(Method::POST, "/api/v1/auth/refresh")
            .header("content-type", "application/json")
            .raw_body(json!({ "token": user.token }).to_string()),
    )
    .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{:?}", refreshed.body);
    expect_fields(
        &refreshed.body,
        AUTH_CLIENT,
        &[("token", Json::Str), ("user.id", Json::Str)],
    );
    let old = get(&system, "/api/v1/users/me", &user.token).await;
    assert_eq!(
        old.status,
        StatusCode::UNAUTHORIZED,
        "the old token is refused"
    );
    let new_token = refreshed.body["token"].as_str().expect("token");
    assert_eq!(
        get(&system, "/api/v1/users/me", new_token).await.status,
        StatusCode::OK
    );
    system.stop().await;
}

#[tokio::test]
async fn profiles_and_lists_count_each_follower_once() {
    let system = System::start(&[]).await;
    let (star, fan, other) = (
        system.register("star").await,
        system.register("fan").await,
        system.register("other").await,
    );
    // Repeated and concurrent follows: one follower each. The reply counts this follow.
    let first = follow(&system, &fan, &star).await;
    assert_eq!(first.body["follower_count"], 1);
    assert_eq!(first.body["is_following"], true);
    tokio::join!(
        follow(&system, &fan, &star),
        follow(&system, &other, &star),
        follow(&system, &other, &star),
    );
    follow(&system, &star, &fan).await;

    // getUser: `/users/{id}/profile`, parsed whole into `User`.
    let profile = get(
        &system,
        &format!("/api/v1/users/{}/profile", star.id),
        &fan.token,
    )
    .await;
    assert_eq!(profile.status, StatusCode::OK, "{:?}", profile.body);
    expect_fields(&profile.body, PROFILE_CLIENT, USER_FIELDS);
    assert_eq!(profile.body["follower_count"], 2, "{}", profile.body);
    assert_eq!(profile.body["following_count"], 1);
    assert_eq!(profile.body["is_following"], true);
    assert_eq!(profile.body["follows_you"], true);
    // The web app passes the username; one handler answers the same profile.
    let by_name = get(&system, "/api/v1/users/star/profile", &other.token).await;
    assert_eq!(by_name.body["id"], star.id.as_str());
    assert_eq!(by_name.body["follower_count"], 2);
    assert_eq!(by_name.body["follows_you"], false);

    // getFollowers: `users` (or followers/following), `total`, `has_more`; each a `User`.
    let followers = get(
        &system,
        &format!("/api/v1/users/{}/followers?limit=1&offset=0", star.id),
        &fan.token,
    )
    .await;
    assert_eq!(followers.status, StatusCode::OK, "{:?}", followers.body);
    expect_fields(
        &followers.body,
        PROFILE_CLIENT,
        &[
            ("users", Json::Array),
            ("total", Json::Int),
            ("has_more", Json::Bool),
        ],
    );
    assert_eq!(followers.body["total"], 2);
    assert_eq!(followers.body["has_more"], true);
    let page: Vec<&Value> = followers.body["users"]
        .as_array()
        .expect("users")
        .iter()
        .collect();
    assert_eq!(page.len(), 1);
    for user in &page {
        expect_fields(
            user,
            USER_MODEL,
            &[
                ("id", Json::Str),
                ("username", Json::Str),
                ("display_name", Json::Str),
                ("bio", Json::Str),
                ("avatar_url", Json::Str),
                ("follower_count", Json::Int),
                ("following_count", Json::Int),
                ("is_following", Json::Bool),
                ("follows_you", Json::Bool),
            ],
        );
    }
    let rest = get(
        &system,
        &format!("/api/v1/users/{}/followers?limit=1&offset=1", star.id),
        &fan.token,
    )
    .await;
    assert_eq!(rest.body["has_more"], false);
    let mut ids = vec![
        page[0]["id"].as_str().expect("id").to_owned(),
        rest.body["users"][0]["id"].as_str().expect("id").to_owned(),
    ];
    ids.sort();
    let mut expected = vec![fan.id.clone(), other.id.clone()];
    expected.sort();
    assert_eq!(ids, expected, "two pages, each follower once");

    let following = get(
        &system,
        &format!("/api/v1/users/{}/following?limit=20&offset=0", fan.id),
        &fan.token,
    )
    .await;
    assert_eq!(following.body["total"], 1);
    assert_eq!(following.body["users"][0]["id"], star.id.as_str());
    assert_eq!(following.body["users"][0]["username"], "star");
    assert_eq!(following.body["users"][0]["follower_count"], 2);
    // Seen by fan: fan follows star, and star follows fan back.
    assert_eq!(following.body["users"][0]["is_following"], true);
    assert_eq!(following.body["users"][0]["follows_you"], true);

    // An unfollow leaves the list and the count.
    let unfollowed = send(
        plugin(
            &system,
            Method::POST,
            "/api/v1/social/unfollow",
            &other.token,
        )
        .json(&json!({ "target_user_id": star.id })),
    )
    .await;
    assert_eq!(unfollowed.status, StatusCode::OK);
    let profile = get(
        &system,
        &format!("/api/v1/users/{}/profile", star.id),
        &fan.token,
    )
    .await;
    assert_eq!(profile.body["follower_count"], 1);
    system.stop().await;
}

#[tokio::test]
async fn profile_edits_sent_as_post_show_up_in_profiles_feeds_and_comments() {
    let system = System::start(&[]).await;
    let (author, listener) = (
        system.register("editor").await,
        system.register("listener").await,
    );
    // updateUserProfile: PUT with a body, which JUCE sends as POST; only non-empty fields.
    let edited = send(
        plugin(&system, Method::POST, "/api/v1/users/me", &author.token).raw_body(
            json!({"display_name": "The Editor", "bio": "Loops at night.\nMostly techno."})
                .to_string(),
        ),
    )
    .await;
    assert_eq!(edited.status, StatusCode::OK, "{:?}", edited.body);
    expect_fields(&edited.body, NETWORK_CLIENT, USER_FIELDS);
    assert_eq!(edited.body["display_name"], "The Editor");
    // The web app's field name for the picture, by PUT.
    let avatar = "https://cdn.example/avatars/editor.png";
    let pictured = send(
        plugin(&system, Method::PUT, "/api/v1/users/me", &author.token)
            .json(&json!({ "profile_picture_url": avatar })),
    )
    .await;
    assert_eq!(pictured.status, StatusCode::OK, "{:?}", pictured.body);
    let me = get(&system, "/api/v1/users/me", &author.token).await;
    assert_eq!(me.body["avatar_url"], avatar);
    assert_eq!(me.body["bio"], "Loops at night.\nMostly techno.");
    assert_eq!(me.body["display_name"], "The Editor");

    let post = system.post(&author, "techno").await;
    let comment = send(
        plugin(
            &system,
            Method::POST,
            &format!("/api/v1/posts/{post}/comments"),
            &author.token,
        )
        .json(&json!({"content": "first!"})),
    )
    .await;
    assert_eq!(comment.status, StatusCode::CREATED, "{:?}", comment.body);
    // Feed items and comments carry the author's avatar (read models apply asynchronously).
    let feed_path = format!("/api/v1/users/{}/posts?limit=20&offset=0", author.id);
    eventually(
        "the avatar on the author's posts",
        Duration::from_secs(10),
        || async {
            get(&system, &feed_path, &listener.token).await.body["activities"][0]["user_avatar_url"]
                == avatar
        },
    )
    .await;
    let feed = get(&system, &feed_path, &listener.token).await;
    expect_fields(
        &feed.body["activities"][0],
        FEED_POST,
        &[("user_avatar_url", Json::Str), ("username", Json::Str)],
    );
    let comments_path = format!("/api/v1/posts/{post}/comments?limit=20&offset=0");
    eventually("the avatar on comments", Duration::from_secs(10), || async {
        get(&system, &comments_path, &listener.token).await.body["comments"][0]["user_avatar_url"]
            == avatar
    })
    .await;
    let comments = get(&system, &comments_path, &listener.token).await;
    expect_fields(
        &comments.body["comments"][0],
        COMMENT_MODEL,
        &[("user_avatar_url", Json::Str)],
    );

    let events: Vec<String> = system.events().await.into_iter().map(|(s, _)| s).collect();
    assert_eq!(
        events
            .iter()
            .filter(|s| *s == "events.profile_updated")
            .count(),
        2,
        "{events:?}"
    );
    system.stop().await;
}

#[tokio::test]
async fn a_username_change_claims_the_new_name_and_releases_the_old() {
    let system = System::start(&[]).await;
    let (renamer, rival) = (
        system.register("old_name").await,
        system.register("rival").await,
    );
    let post = system.post(&renamer, "house").await;

    // changeUsername: PUT {username}, sent as POST by JUCE; the reply is parsed as a `User`.
    let changed = send(
        plugin(
            &system,
            Method::POST,
            "/api/v1/users/username",
            &renamer.token,
        )
        .raw_body(json!({"username": "new_name"}).to_string()),
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
    expect_fields(&changed.body, PROFILE_CLIENT, USER_FIELDS);
    assert_eq!(changed.body["username"], "new_name");

    // Taken names are refused.
    let taken = send(
        plugin(&system, Method::PUT, "/api/v1/users/username", &rival.token)
            .json(&json!({"username": "NEW_NAME"})),
    )
    .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert_eq!(taken.body["error"], "username_taken");

    // The token issued before the change still works; sign-in takes the new name only.
    assert_eq!(
        get(&system, "/api/v1/users/me", &renamer.token).await.body["username"],
        "new_name"
    );
    let login = |name: &'static str| {
        send(
            system
                .api
                .request(Method::POST, "/api/v1/auth/login")
                .json(&json!({"email": name, "password": "correct horse battery"})),
        )
    };
    assert_eq!(login("new_name").await.status, StatusCode::OK);
    assert_eq!(login("old_name").await.status, StatusCode::UNAUTHORIZED);
    // The old name is free again, for a rename and for a registration alike.
    let reclaimed = send(
        plugin(&system, Method::PUT, "/api/v1/users/username", &rival.token)
            .json(&json!({"username": "old_name"})),
    )
    .await;
    assert_eq!(reclaimed.status, StatusCode::OK, "{:?}", reclaimed.body);

    // Posts written under the old name show the new one.
    let feed_path = format!("/api/v1/users/{}/posts", renamer.id);
    eventually(
        "the new name on old posts",
        Duration::from_secs(10),
        || async {
            let feed = get(&system, &feed_path, &rival.token).await;
            feed.body["activities"][0]["id"] == post.as_str()
                && feed.body["activities"][0]["username"] == "new_name"
        },
    )
    .await;

    // Two users racing for one name: exactly one gets it.
    let (a, b) = (
        system.register("racer_a").await,
        system.register("racer_b").await,
    );
    let rename = |user: &User| {
        send(
            plugin(&system, Method::PUT, "/api/v1/users/username", &user.token)
                .json(&json!({"username": "the_prize"})),
        )
    };
    let (ra, rb) = tokio::join!(rename(&a), rename(&b));
    let mut statuses = [ra.status.as_u16(), rb.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409]);
    system.stop().await;
}
