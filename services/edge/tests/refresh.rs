//! `POST /api/v1/auth/refresh` as the plugin sends it (the token in the body, no
//! `Authorization` header: `plugin/src/network/api/AuthClient.cpp`, `refreshAuthToken`) and as
//! the web app does (header, body `{}`), with rotation, the grace after expiry and the absolute
//! session lifetime.

mod common;

use std::time::Duration;

use common::{Backends, Edge, SECRET, send};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use sidechain_edge::auth::jwt::Claims;
use sidechain_test_support::Reply;

/// A token for `user_id` as the edge signs them, with the times given (seconds from now).
fn token(user_id: &str, issued: i64, expires: i64, session_began: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: user_id.to_owned(),
        user_id: user_id.to_owned(),
        username: "whoever".to_owned(),
        iat: now + issued,
        exp: now + expires,
        jti: uuid::Uuid::new_v4().to_string(),
        nbf: now + issued,
        iss: "sidechain".to_owned(),
        aud: "sidechain-api".to_owned(),
        auth_time: now + session_began,
    };
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(hex::encode(&Sha256::digest(SECRET.as_bytes())[..8]));
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("signed")
}

/// The plugin's refresh: `{"token": …}`, `Content-Type: application/json`, no header.
async fn refresh_by_body(edge: &Edge, token: &str) -> Reply {
    send(
        edge.api
            .request(Method::POST, "/api/v1/auth/refresh")
            .json(&json!({ "token": token })),
    )
    .await
}

async fn me(edge: &Edge, token: &str) -> Reply {
    send(
        edge.api
            .request(Method::GET, "/api/v1/auth/me")
            .bearer(token),
    )
    .await
}

#[tokio::test]
async fn the_plugins_refresh_by_body_rotates_the_token() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source()).await;
    let user = edge.register("body_refresher").await;

    let refreshed = refresh_by_body(&edge, &user.token).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{:?}", refreshed.body);
    // A token came in the body and one goes out: nothing may cache the answer.
    assert_eq!(refreshed.headers["cache-control"], "no-store");
    // What AuthClient.cpp reads: `token` and `user.id`.
    let new_token = refreshed.body["token"].as_str().expect("token").to_owned();
    assert_eq!(refreshed.body["user"]["id"], user.id.as_str());
    assert_ne!(new_token, user.token);

    // Rotation: the old token is dead everywhere, also for another refresh; the new one works.
    let old = me(&edge, &user.token).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    assert_eq!(old.body["error"], "token_revoked");
    let again = refresh_by_body(&edge, &user.token).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert_eq!(again.body["error"], "token_revoked");
    assert_eq!(me(&edge, &new_token).await.status, StatusCode::OK);

    // The web app's way (header, body `{}`) and both at once (agreeing) work too.
    let by_header = send(
        edge.api
            .request(Method::POST, "/api/v1/auth/refresh")
            .bearer(&new_token)
            .json(&json!({})),
    )
    .await;
    assert_eq!(by_header.status, StatusCode::OK, "{:?}", by_header.body);
    let third = by_header.body["token"].as_str().expect("token").to_owned();
    let both = send(
        edge.api
            .request(Method::POST, "/api/v1/auth/refresh")
            .bearer(&third)
            .json(&json!({ "token": third })),
    )
    .await;
    assert_eq!(both.status, StatusCode::OK, "{:?}", both.body);
    edge.stop().await;
}

#[tokio::test]
async fn a_just_expired_token_refreshes_within_the_grace_and_not_after() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source()).await;
    let user = edge.register("sleepy_laptop").await;

    // Expired a minute ago (the laptop slept through the plugin's refresh timer).
    let expired = token(&user.id, -7200, -60, -7200);
    let refused = me(&edge, &expired).await;
    assert_eq!(refused.body["error"], "token_expired");
    let refreshed = refresh_by_body(&edge, &expired).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{:?}", refreshed.body);
    assert_eq!(refreshed.body["user"]["id"], user.id.as_str());
    // …and rotated like any other: the expired token cannot be refreshed twice.
    let twice = refresh_by_body(&edge, &expired).await;
    assert_eq!(twice.status, StatusCode::UNAUTHORIZED);
    assert_eq!(twice.body["error"], "token_revoked");

    // Expired sixteen minutes ago: past the fifteen-minute grace.
    let stale = token(&user.id, -7200, -16 * 60, -7200);
    let refused = refresh_by_body(&edge, &stale).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.body["error"], "token_expired");

    // Within the grace but the session began 31 days ago: the absolute lifetime wins.
    let ancient = token(&user.id, -3600, -60, -31 * 86_400);
    let refused = refresh_by_body(&edge, &ancient).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.body["error"], "session_expired");
    edge.stop().await;
}

#[tokio::test]
async fn a_signed_out_token_stays_refused_after_it_expires() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source()).await;
    let user = edge.register("signed_out").await;

    // Valid for two more seconds; signed out now.
    let short = token(&user.id, -60, 2, -60);
    let logout = send(
        edge.api
            .request(Method::POST, "/api/v1/auth/logout")
            .bearer(&short),
    )
    .await;
    assert_eq!(logout.status, StatusCode::OK, "{:?}", logout.body);
    // Past its expiry (and the 5 s leeway), inside the refresh grace.
    sidechain_test_support::eventually("the token to expire", Duration::from_secs(15), || async {
        me(&edge, &short).await.body["error"] == "token_expired"
    })
    .await;
    let refused = refresh_by_body(&edge, &short).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.body["error"], "token_revoked");
    edge.stop().await;
}
