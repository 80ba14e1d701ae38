//! Accounts and tokens against real NATS and Redis.

mod common;

use std::time::Duration;

use common::{Backends, Edge, send};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn register_answers_the_plugin_shape_and_publishes_one_event() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source()).await;
    let reply = send(edge.api.request(Method::POST, "/api/v1/auth/register").json(&json!({"email": "Alice@Example.com", "username": "Alice", "password": "correct horse", "display_name": "Alice A."})))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let auth = &reply.body["auth"];
    assert!(
        auth["token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );
    assert!(auth["expires_at"].as_str().is_some());
    assert_eq!(auth["user"]["username"], "Alice");
    assert_eq!(auth["user"]["display_name"], "Alice A.");
    assert_eq!(auth["user"]["email"], "alice@example.com");
    assert!(reply.headers.contains_key("x-request-id"));

    let events = common::stream_events(&backends.nats).await;
    assert_eq!(common::subjects(&events), vec!["events.user_registered"]);
    assert_eq!(
        events[0].1.actor_user_id,
        auth["user"]["id"].as_str().expect("id")
    );
}

#[tokio::test]
async fn usernames_and_emails_are_unique_even_under_concurrent_registration() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source()).await;
    let attempt = |email: &'static str| {
        send(
            edge.api
                .request(Method::POST, "/api/v1/auth/register")
                .json(&json!({"email": email, "username": "dupe", "password": "correct horse"})),
        )
    };
    let (a, b) = tokio::join!(attempt("one@example.com"), attempt("two@example.com"));
    let mut statuses = vec![a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, vec![StatusCode::CREATED, StatusCode::CONFLICT]);
    let loser = if a.status == StatusCode::CONFLICT {
        a
    } else {
        b
    };
    assert_eq!(loser.body["error"], "username_taken");

    // Same email, other name, different case.
    let reply = send(edge.api.request(Method::POST, "/api/v1/auth/register").json(&json!({"email": "ONE@example.com", "username": "other", "password": "correct horse"})))
        .await;
    let taken_by_first =
        reply.status == StatusCode::CONFLICT && reply.body["error"] == "email_taken";
    let first_lost = reply.status == StatusCode::CREATED;
    assert!(taken_by_first || first_lost, "{:?}", reply.body);

    let events = common::stream_events(&backends.nats).await;
    let registered = events
        .iter()
        .filter(|(s, _)| s == "events.user_registered")
        .count();
    let created = usize::from(first_lost) + 1;
    assert_eq!(registered, created, "one event per account created");
}

#[tokio::test]
async fn login_refresh_me_and_wrong_credentials() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source()).await;
    let user = edge.register("bob").await;

    for login in [
        json!({"username": "BOB", "password": "correct horse battery"}),
        json!({"email": "bob@example.com", "password": "correct horse battery"}),
    ] {
        let reply = send(
            edge.api
                .request(Method::POST, "/api/v1/auth/login")
                .json(&login),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.body["auth"]["user"]["id"], user.id.as_str());
    }

    let wrong_password = send(
        edge.api
            .request(Method::POST, "/api/v1/auth/login")
            .json(&json!({"username": "bob", "password": "nope nope"})),
    )
    .await;
    let unknown_user = send(
        edge.api
            .request(Method::POST, "/api/v1/auth/login")
            .json(&json!({"username": "nobody", "password": "nope nope"})),
    )
    .await;
    for reply in [&wrong_password, &unknown_user] {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(reply.body["error"], "invalid_credentials");
    }
    assert_eq!(
        wrong_password.body["message"], unknown_user.body["message"],
        "must not say which part was wrong"
    );

    let me = send(edge.api.me().bearer(&user.token)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["user"]["username"], "bob");

    let refreshed = send(edge.api.refresh().bearer(&user.token)).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{:?}", refreshed.body);
    let new_token = refreshed.body["token"].as_str().expect("token");
    assert!(refreshed.body["expires_at"].is_string());
    assert_eq!(refreshed.body["user"]["id"], user.id.as_str());
    let me = send(edge.api.me().bearer(new_token)).await;
    assert_eq!(me.status, StatusCode::OK);
}

#[tokio::test]
async fn bad_tokens_are_refused_with_401() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source()).await;
    let missing = send(edge.api.me()).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.body["error"], "missing_token");
    assert_eq!(missing.headers["www-authenticate"], "Bearer");
    let garbage = send(edge.api.me().bearer("not.a.jwt")).await;
    assert_eq!(garbage.status, StatusCode::UNAUTHORIZED);
    assert_eq!(garbage.body["error"], "invalid_token");
    assert!(
        garbage.body["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
}

#[tokio::test]
async fn logout_makes_the_token_useless_on_every_edge_within_a_second() {
    let backends = Backends::start();
    let first = Edge::start(backends.source()).await;
    let second = Edge::start(backends.source()).await;
    let user = first.register("carol").await;

    // Both instances have the session cached.
    for edge in [&first, &second] {
        let me = send(edge.api.me().bearer(&user.token)).await;
        assert_eq!(me.status, StatusCode::OK);
    }

    let out = send(first.api.logout().bearer(&user.token)).await;
    assert_eq!(out.status, StatusCode::OK, "{:?}", out.body);
    let revoked_at = tokio::time::Instant::now();

    let again = send(first.api.me().bearer(&user.token)).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert_eq!(again.body["error"], "token_revoked");

    loop {
        let there = send(second.api.me().bearer(&user.token)).await;
        if there.status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "second edge still accepts the token"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let events = common::stream_events(&backends.nats).await;
    assert_eq!(
        common::subjects(&events),
        vec!["events.user_registered", "events.logout"]
    );
}
