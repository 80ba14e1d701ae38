//! What a hostile or merely careless client meets at the edge: bounded metric labels, headers
//! that keep answers out of caches and sniffers, CORS preflights that cost nothing, and
//! idempotency keys bound to the request they were first used with.

mod common;

use common::{Backends, Edge, Reply, stream_events, subjects};
use serde_json::{Value, json};
use sidechain_api_client::{Method, StatusCode};

/// Any request to the API, with an optional token and JSON body.
async fn call(
    edge: &Edge,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut request = edge.api.request(method, path).bearer_opt(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    sidechain_test_support::send(request).await
}

fn series(metrics: &str, name: &str) -> usize {
    metrics
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .count()
}

#[tokio::test]
async fn invented_methods_and_paths_add_no_metric_series() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source().with("RATE_LIMIT_DEFAULT", "100000/1m")).await;
    let send = |method: &str, path: String| {
        let request = edge.api.request(
            Method::from_bytes(method.as_bytes()).expect("method token"),
            &path,
        );
        async move { request.send().await.expect("answered").status }
    };
    // One of each kind first: an invented method and a real one on an unknown path, and an
    // invented method on a known route.
    send("BREW", "/warm/up".into()).await;
    send("GET", "/warm/up".into()).await;
    send("BREW", "/api/v1/feed/trending".into()).await;
    let before = edge.metrics().await;

    for n in 0..1_000u32 {
        let method = format!("M{n:04X}");
        let status = send(&method, format!("/random/{}/{n}", uuid::Uuid::new_v4())).await;
        assert!(status.is_client_error(), "{method}: {status}");
        if n % 10 == 0 {
            send("GET", format!("/api/v1/nope-{n}")).await;
            send(&method, "/api/v1/feed/trending".into()).await;
        }
    }
    let after = edge.metrics().await;
    for name in [
        "sidechain_http_requests_total",
        "sidechain_http_request_duration_seconds_count",
    ] {
        assert_eq!(series(&after, name), series(&before, name), "{name}");
    }
    assert!(
        after.contains(r#"method="OTHER",route="unmatched""#),
        "{after}"
    );
    assert!(!after.contains("M0001") && !after.contains("/random/"));
}

#[tokio::test]
async fn answers_carry_nosniff_and_personal_ones_no_store() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source()).await;
    let user = edge.register("headers").await;

    let public = call(&edge, Method::GET, "/health", None, None).await;
    assert_eq!(public.headers["x-content-type-options"], "nosniff");
    assert!(public.headers.get("cache-control").is_none());

    let me = call(
        &edge,
        Method::GET,
        "/api/v1/auth/me",
        Some(&user.token),
        None,
    )
    .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.headers["x-content-type-options"], "nosniff");
    assert_eq!(me.headers["cache-control"], "no-store");

    // Errors to a request with credentials are personal too.
    let bad = call(
        &edge,
        Method::GET,
        "/api/v1/auth/me",
        Some("not.a.token"),
        None,
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert_eq!(bad.headers["cache-control"], "no-store");
    assert_eq!(bad.headers["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn preflights_from_allowed_origins_need_no_token_and_spend_no_quota() {
    const WEB_APP: &str = "http://localhost:5173";
    let backends = Backends::start();
    let edge = Edge::start(
        backends
            .source()
            .with("CORS_ALLOWED_ORIGINS", WEB_APP)
            .with("RATE_LIMIT_DEFAULT", "2/1m"),
    )
    .await;
    let preflight = |origin: &'static str| {
        edge.api
            .request(Method::OPTIONS, "/api/v1/social/like")
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization,content-type,idempotency-key",
            )
            .send()
    };
    for _ in 0..5 {
        let answer = preflight(WEB_APP).await.expect("preflight");
        assert!(answer.status.is_success(), "{}", answer.status);
        assert_eq!(answer.headers["access-control-allow-origin"], WEB_APP);
        let allowed = answer.headers["access-control-allow-headers"]
            .to_str()
            .expect("ascii")
            .to_ascii_lowercase();
        assert!(
            allowed.contains("authorization") && allowed.contains("idempotency-key"),
            "{allowed}"
        );
    }
    let stranger = preflight("https://evil.example").await.expect("preflight");
    assert!(
        stranger
            .headers
            .get("access-control-allow-origin")
            .is_none()
    );

    // The real request: the browser may read the answer and the request id.
    let answer = edge
        .api
        .request(Method::GET, "/api/v1/feed/trending")
        .header("Origin", WEB_APP)
        .send()
        .await
        .expect("get");
    assert_eq!(answer.headers["access-control-allow-origin"], WEB_APP);
    let exposed = answer.headers["access-control-expose-headers"]
        .to_str()
        .expect("ascii")
        .to_ascii_lowercase();
    assert!(exposed.contains("x-request-id"), "{exposed}");
}

#[tokio::test]
async fn without_configured_origins_no_cors_headers_are_sent() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source()).await;
    let answer = edge
        .api
        .request(Method::GET, "/health")
        .header("Origin", "http://localhost:5173")
        .send()
        .await
        .expect("get");
    assert!(answer.headers.get("access-control-allow-origin").is_none());
}

async fn keyed(edge: &Edge, path: &str, token: &str, key: &str, body: Option<Value>) -> Reply {
    let mut request = edge
        .api
        .request(Method::POST, path)
        .bearer(token)
        .idempotency_key(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    sidechain_test_support::send(request).await
}

#[tokio::test]
async fn a_key_reused_for_another_request_is_refused_and_stores_nothing() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source()).await;
    let alice = edge.register("alice_keys").await;
    let bob = edge.register("bob_keys").await;
    let carol = edge.register("carol_keys").await;
    let follow = |target: &str| Some(json!({ "target_user_id": target }));

    let first = keyed(
        &edge,
        "/api/v1/social/follow",
        &alice.token,
        "k-1",
        follow(&bob.id),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    // The same request again is a retry: same event, stored once.
    let retry = keyed(
        &edge,
        "/api/v1/social/follow",
        &alice.token,
        "k-1",
        follow(&bob.id),
    )
    .await;
    assert_eq!(retry.status, StatusCode::OK);
    assert_eq!(retry.body["event_id"], first.body["event_id"]);
    // Another target, or another action, with the same key: refused.
    for (path, target) in [
        ("/api/v1/social/follow", &carol.id),
        ("/api/v1/social/unfollow", &bob.id),
    ] {
        let reused = keyed(&edge, path, &alice.token, "k-1", follow(target)).await;
        assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        assert_eq!(reused.body["error"], "idempotency_key_reused");
        assert!(
            reused.body["request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty())
        );
    }
    // Keys belong to their user: bob may use the same text.
    let bobs = keyed(
        &edge,
        "/api/v1/social/follow",
        &bob.token,
        "k-1",
        follow(&carol.id),
    )
    .await;
    assert_eq!(bobs.status, StatusCode::OK);

    let events = stream_events(&backends.nats).await;
    let follows = subjects(&events)
        .into_iter()
        .filter(|s| *s == "events.follow" || *s == "events.unfollow")
        .count();
    assert_eq!(follows, 2, "{:?}", subjects(&events));
}

#[tokio::test]
async fn one_logout_with_a_reused_key_cannot_swallow_another() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source()).await;
    let user = edge.register("two_devices").await;
    let login = json!({ "email": "two_devices@example.com", "password": "correct horse battery" });
    let second = call(&edge, Method::POST, "/api/v1/auth/login", None, Some(login)).await;
    let second_token = second.body["auth"]["token"]
        .as_str()
        .expect("token")
        .to_owned();

    for token in [&user.token, &second_token] {
        let out = keyed(&edge, "/api/v1/auth/logout", token, "logout-key", None).await;
        assert_eq!(out.status, StatusCode::OK, "{:?}", out.body);
    }
    for token in [&user.token, &second_token] {
        let me = call(&edge, Method::GET, "/api/v1/auth/me", Some(token), None).await;
        assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    }
    let events = stream_events(&backends.nats).await;
    let logouts = subjects(&events)
        .into_iter()
        .filter(|s| *s == "events.logout")
        .count();
    assert_eq!(logouts, 2);
}

#[tokio::test]
async fn rate_limits_cannot_be_bought_with_tokens_or_dodged_by_unknown_paths() {
    let backends = Backends::start();
    let edge = Edge::start(
        backends
            .source()
            .with("RATE_LIMIT_AUTH", "4/1m")
            .with("RATE_LIMIT_DEFAULT", "3/1m"),
    )
    .await;
    // Two registrations spend two of the address's four auth requests.
    let first = edge.register("budget_one").await;
    let second = edge.register("budget_two").await;
    // Each token's refresh spends the same address budget, not a budget of its own.
    for user in [&first, &second] {
        let refreshed = call(
            &edge,
            Method::POST,
            "/api/v1/auth/refresh",
            Some(&user.token),
            None,
        )
        .await;
        assert_eq!(refreshed.status, StatusCode::OK, "{:?}", refreshed.body);
    }
    let limited = call(
        &edge,
        Method::POST,
        "/api/v1/auth/refresh",
        Some(&first.token),
        None,
    )
    .await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers.contains_key("retry-after"));

    // Unknown paths spend the default budget of the address.
    let statuses: Vec<StatusCode> = probe_statuses(&edge, 4).await;
    assert_eq!(
        statuses,
        [
            StatusCode::NOT_FOUND,
            StatusCode::NOT_FOUND,
            StatusCode::NOT_FOUND,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
}

async fn probe_statuses(edge: &Edge, n: usize) -> Vec<StatusCode> {
    let mut statuses = Vec::new();
    for i in 0..n {
        statuses.push(
            call(edge, Method::GET, &format!("/api/v1/probe-{i}"), None, None)
                .await
                .status,
        );
    }
    statuses
}

#[tokio::test]
async fn one_account_meets_a_backoff_after_repeated_sign_in_attempts() {
    let backends = Backends::start();
    let edge = Edge::start(
        backends
            .source()
            .with("RATE_LIMIT_AUTH", "1000/1m")
            .with("RATE_LIMIT_LOGIN_ACCOUNT", "3/15m"),
    )
    .await;
    edge.register("victim").await;
    edge.register("bystander").await;
    let login = |who: &str, password: &str| {
        call(
            &edge,
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "email": who, "password": password })),
        )
    };
    for _ in 0..3 {
        assert_eq!(
            login("victim", "guess").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // The account now waits, whichever spelling of its login is tried, even with the right
    // password; other accounts do not.
    for who in ["victim", "VICTIM", "victim@example.com"] {
        let limited = login(who, "correct horse battery").await;
        assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "{who}");
        assert!(limited.headers.contains_key("retry-after"));
    }
    assert_eq!(
        login("bystander", "correct horse battery").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn look_alike_emails_are_one_account_and_names_cannot_hide_text() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source()).await;
    edge.register("original").await;
    let register = |email: &str, username: &str, display_name: &str| {
        call(
            &edge,
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(json!({
                "email": email,
                "username": username,
                "password": "correct horse battery",
                "display_name": display_name,
            })),
        )
    };
    // Full-width letters and at sign, upper case: the same address after NFKC and case folding.
    let twin = register("\u{FF2F}RIGINAL\u{FF20}example.com", "twin", "Twin").await;
    assert_eq!(twin.status, StatusCode::CONFLICT, "{:?}", twin.body);
    assert_eq!(twin.body["error"], "email_taken");

    let spoof = register("spoof@example.com", "spoof", "admin\u{202E}gnp.exe").await;
    assert_eq!(spoof.status, StatusCode::BAD_REQUEST);
    assert!(
        spoof.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("display_name")),
        "{:?}",
        spoof.body
    );
}

#[tokio::test]
async fn a_refresh_rotates_the_token_and_the_old_one_dies() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source()).await;
    let user = edge.register("rotating").await;
    let refreshed = call(
        &edge,
        Method::POST,
        "/api/v1/auth/refresh",
        Some(&user.token),
        None,
    )
    .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{:?}", refreshed.body);
    let fresh = refreshed.body["token"].as_str().expect("token").to_owned();
    assert_ne!(fresh, user.token);

    let old = call(
        &edge,
        Method::GET,
        "/api/v1/auth/me",
        Some(&user.token),
        None,
    )
    .await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    assert_eq!(old.body["error"], "token_revoked");
    let new = call(&edge, Method::GET, "/api/v1/auth/me", Some(&fresh), None).await;
    assert_eq!(new.status, StatusCode::OK);
    // A stolen copy of the old token cannot refresh either.
    let replay = call(
        &edge,
        Method::POST,
        "/api/v1/auth/refresh",
        Some(&user.token),
        None,
    )
    .await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
}

async fn sign_in(edge: &Edge, login: &str, password: &str) -> Reply {
    call(
        edge,
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({ "email": login, "password": password })),
    )
    .await
}

fn token_of(reply: &Reply) -> String {
    reply.body["auth"]["token"]
        .as_str()
        .or_else(|| reply.body["token"].as_str())
        .expect("token")
        .to_owned()
}

#[tokio::test]
async fn signing_out_everywhere_ends_every_token_on_every_edge() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source()).await;
    let other_edge = Edge::start(backends.source()).await;
    let user = edge.register("everywhere").await;
    let laptop = token_of(&sign_in(&edge, "everywhere", "correct horse battery").await);
    // Both tokens are known (cached) on the other edge before the sign-out.
    for token in [&user.token, &laptop] {
        let me = call(
            &other_edge,
            Method::GET,
            "/api/v1/auth/me",
            Some(token),
            None,
        )
        .await;
        assert_eq!(me.status, StatusCode::OK);
    }
    // Tokens carry whole-second times: make the sign-out fall in a later second.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;

    let out = call(
        &edge,
        Method::POST,
        "/api/v1/auth/logout-all",
        Some(&laptop),
        None,
    )
    .await;
    assert_eq!(out.status, StatusCode::OK, "{:?}", out.body);
    sidechain_test_support::eventually(
        "the other edge hears of it",
        std::time::Duration::from_secs(5),
        || async {
            call(
                &other_edge,
                Method::GET,
                "/api/v1/auth/me",
                Some(&user.token),
                None,
            )
            .await
            .status
                == StatusCode::UNAUTHORIZED
        },
    )
    .await;
    for (instance, token) in [
        (&edge, &user.token),
        (&edge, &laptop),
        (&other_edge, &laptop),
    ] {
        let me = call(instance, Method::GET, "/api/v1/auth/me", Some(token), None).await;
        assert_eq!(me.status, StatusCode::UNAUTHORIZED);
        assert_eq!(me.body["error"], "token_revoked");
    }
    // A fresh edge, with nothing in memory, refuses them too (the account holds the epoch).
    let fresh_edge = Edge::start(backends.source()).await;
    let me = call(
        &fresh_edge,
        Method::GET,
        "/api/v1/auth/me",
        Some(&laptop),
        None,
    )
    .await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    // Signing in again works.
    let again = sign_in(&edge, "everywhere", "correct horse battery").await;
    let me = call(
        &edge,
        Method::GET,
        "/api/v1/auth/me",
        Some(&token_of(&again)),
        None,
    )
    .await;
    assert_eq!(me.status, StatusCode::OK);
    let events = stream_events(&backends.nats).await;
    assert!(subjects(&events).contains(&"events.sessions_ended"));
}

#[tokio::test]
async fn a_password_change_needs_the_current_password_and_ends_other_sessions() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source()).await;
    let user = edge.register("changer").await;
    let phone = token_of(&sign_in(&edge, "changer", "correct horse battery").await);
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;

    let change = |current: &str, new: &str| {
        call(
            &edge,
            Method::PUT,
            "/api/v1/auth/password",
            Some(&user.token),
            Some(json!({ "current_password": current, "new_password": new })),
        )
    };
    let wrong = change("not my password", "a brand new password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body["error"], "invalid_credentials");
    let short = change("correct horse battery", "short").await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);

    let changed = change("correct horse battery", "a brand new password").await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
    let fresh = token_of(&changed);
    for token in [&user.token, &phone] {
        let me = call(&edge, Method::GET, "/api/v1/auth/me", Some(token), None).await;
        assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    }
    let me = call(&edge, Method::GET, "/api/v1/auth/me", Some(&fresh), None).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(
        sign_in(&edge, "changer", "correct horse battery")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in(&edge, "changer", "a brand new password")
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_signed_out_token_stays_dead_when_redis_loses_everything() {
    let backends = Backends::start();
    let edge = Edge::start(backends.source()).await;
    let user = edge.register("wiped").await;
    let out = call(
        &edge,
        Method::POST,
        "/api/v1/auth/logout",
        Some(&user.token),
        None,
    )
    .await;
    assert_eq!(out.status, StatusCode::OK);
    let mut redis = redis::Client::open(backends.redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut redis)
        .await
        .expect("flush");
    // A fresh edge remembers nothing; Redis remembers nothing; the account does.
    let fresh_edge = Edge::start(backends.source()).await;
    let me = call(
        &fresh_edge,
        Method::GET,
        "/api/v1/auth/me",
        Some(&user.token),
        None,
    )
    .await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert_eq!(me.body["error"], "token_revoked");
}

#[tokio::test]
async fn media_urls_are_https_on_the_configured_hosts_only() {
    let backends = Backends::start();
    let edge = Edge::start(
        backends
            .source()
            .with("MEDIA_URL_HOSTS", "cdn.sidechain.fm, .media.example"),
    )
    .await;
    let user = edge.register("poster").await;
    let post = |audio_url: &str| json!({"audio_url": audio_url, "bpm": 120, "key": "C", "genres": ["house"], "duration_seconds": 4});
    for refused in [
        "https://tracker.example/loop.wav",
        "https://cdn.sidechain.fm.tracker.example/loop.wav",
        "http://cdn.sidechain.fm/loop.wav",
    ] {
        let reply = call(
            &edge,
            Method::POST,
            "/api/v1/feed/post",
            Some(&user.token),
            Some(post(refused)),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{refused}: {:?}",
            reply.body
        );
        assert_eq!(reply.body["error"], "invalid_field");
        assert!(
            reply.body["request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty())
        );
    }
    for accepted in [
        "https://cdn.sidechain.fm/loop.wav",
        "https://eu.media.example/loop.wav",
    ] {
        let reply = call(
            &edge,
            Method::POST,
            "/api/v1/feed/post",
            Some(&user.token),
            Some(post(accepted)),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{accepted}: {:?}",
            reply.body
        );
    }
    // Only the accepted posts became events.
    let created = stream_events(&backends.nats)
        .await
        .into_iter()
        .filter(|(subject, _)| subject == "events.post_created")
        .count();
    assert_eq!(created, 2);
}
