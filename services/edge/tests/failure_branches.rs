//! The edge's failure branches that carry its promises: a session check that cannot be made
//! refuses rather than accepts, accounts unreachable during register/login answer 503, a slow
//! request is cut at REQUEST_TIMEOUT, and an unreadable reply from the cache service is an
//! error with a request id — never a panic, never a half-answer.

mod common;

use std::time::Duration;

use common::{Backends, Edge, send};
use futures::StreamExt as _;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sidechain_test_support::Identity;

/// Every error the edge gives is its JSON error with a request id.
#[track_caller]
fn assert_error(reply: &common::Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(reply.body["error"], code, "{:?}", reply.body);
    assert!(
        reply.body["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{:?}",
        reply.body
    );
}

#[tokio::test]
async fn with_neither_the_cache_service_nor_redis_a_session_check_fails_closed() {
    let mut backends = Backends::start();
    // No cache service runs in these tests: the edge checks sessions itself (Redis for
    // revocations, the accounts bucket for epochs). No in-process session cache, so every
    // request is checked.
    let source = backends.source().with("SESSION_CACHE_TTL", "0s");
    let edge = Edge::start(source.clone()).await;
    // A second edge that will never have seen either token (started now: an instance becomes
    // ready only once Redis has answered).
    let fresh = Edge::start(source).await;
    let alive = edge.register("alive").await;
    let gone = edge.register("gone").await;
    let out = send(edge.api.logout().bearer(&gone.token)).await;
    assert_eq!(out.status, StatusCode::OK, "{:?}", out.body);
    assert_eq!(
        send(edge.api.me().bearer(&alive.token)).await.status,
        StatusCode::OK
    );

    backends.redis.kill();
    let me = send(edge.api.me().bearer(&alive.token)).await;
    assert_error(&me, StatusCode::SERVICE_UNAVAILABLE, "auth_unavailable");
    assert!(me.headers.contains_key("retry-after"));
    // This edge remembers the sign-out it handled; it is never accepted.
    let me = send(edge.api.me().bearer(&gone.token)).await;
    assert_error(&me, StatusCode::UNAUTHORIZED, "token_revoked");
    // The other edge (which heard the sign-out broadcast but never checked either token)
    // cannot confirm the live one and never accepts the signed-out one.
    let me = send(fresh.api.me().bearer(&alive.token)).await;
    assert_error(&me, StatusCode::SERVICE_UNAVAILABLE, "auth_unavailable");
    let me = send(fresh.api.me().bearer(&gone.token)).await;
    assert!(
        matches!(
            me.status,
            StatusCode::UNAUTHORIZED | StatusCode::SERVICE_UNAVAILABLE
        ),
        "{:?}",
        me.body
    );

    // Back: the signed-out token is refused, the other accepted.
    backends.redis.restart();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let me = send(fresh.api.me().bearer(&alive.token)).await;
        if me.status == StatusCode::OK {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{:?}", me.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let me = send(fresh.api.me().bearer(&gone.token)).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED, "{:?}", me.body);
}

#[tokio::test]
async fn register_and_login_while_nats_is_down_answer_503_and_store_nothing() {
    let mut backends = Backends::start();
    let edge = Edge::start(backends.source()).await;
    edge.register("before").await;
    backends.nats.kill();

    let register = send(edge.api.request(Method::POST, "/api/v1/auth/register").json(
        &json!({"email": "late@example.com", "username": "late", "password": "correct horse battery"}),
    ))
    .await;
    assert_eq!(
        register.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        register.body
    );
    assert!(register.headers.contains_key("retry-after"));
    assert!(register.body["request_id"].as_str().is_some());
    let login = send(
        edge.api
            .request(Method::POST, "/api/v1/auth/login")
            .json(&json!({"email": "before", "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(
        login.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        login.body
    );
    assert!(login.headers.contains_key("retry-after"));

    // Nothing half-written: once NATS is back the name is free and the old account works.
    backends.nats.restart();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let register = send(edge.api.request(Method::POST, "/api/v1/auth/register").json(
            &json!({"email": "late@example.com", "username": "late", "password": "correct horse battery"}),
        ))
        .await;
        if register.status == StatusCode::CREATED {
            break;
        }
        assert_eq!(
            register.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{:?}",
            register.body
        );
        assert!(tokio::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = common::stream_events(&backends.nats).await;
    assert_eq!(
        common::subjects(&events),
        vec!["events.user_registered", "events.user_registered"]
    );
}

#[tokio::test]
async fn a_request_still_running_at_request_timeout_gets_503() {
    let backends = Backends::start();
    // A sign-in hashes the password for tens of milliseconds: longer than this budget.
    let edge = Edge::start(backends.source().with("REQUEST_TIMEOUT", "1ms")).await;
    let reply = send(edge.api.request(Method::POST, "/api/v1/auth/register").json(
        &json!({"email": "slow@example.com", "username": "slow", "password": "correct horse battery"}),
    ))
    .await;
    assert_error(&reply, StatusCode::SERVICE_UNAVAILABLE, "request_timeout");
}

#[tokio::test]
async fn an_unreadable_reply_from_the_cache_service_is_a_json_error_not_a_panic() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source()).await;
    let user = edge.register("reader").await;

    // Something answering the cache service's feed subject with bytes that are no FeedReply.
    let impostor = backends.nats.connect(Identity::Cache).await;
    let mut requests = impostor
        .queue_subscribe("feed.*", "cache".to_owned())
        .await
        .expect("subscribe");
    impostor.flush().await.expect("flush");
    let answering = tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            if let Some(reply) = request.reply {
                let _ = impostor
                    .publish(
                        reply,
                        bytes::Bytes::from_static(b"\xff\xff\xff not protobuf"),
                    )
                    .await;
            }
        }
    });

    let feed = send(
        edge.api
            .request(Method::GET, "/api/v1/feed/trending")
            .bearer(&user.token),
    )
    .await;
    assert_error(&feed, StatusCode::INTERNAL_SERVER_ERROR, "internal_error");
    // The edge itself is fine: the next request is served.
    let health = send(edge.api.request(Method::GET, "/health")).await;
    assert_eq!(health.status, StatusCode::OK);
    answering.abort();
}
