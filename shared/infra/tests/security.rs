//! Zero trust inside: every service has its own NATS identity and only the subjects it needs.
//! Against a real nats-server configured from `sidechain_infra::identity`, as in production:
//! no credentials (or unknown ones) are refused, and each identity is refused what belongs to
//! another one. A refused publish or subscription is reported by the server to the client as a
//! "Permissions Violation", which these tests wait for.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use sidechain_config::Source;
use sidechain_infra::nats::{self, ConnectError, NatsConfig};
use sidechain_test_support::{Identity, NatsServer};

/// A client of one identity that records what the server told it.
struct Probe {
    client: async_nats::Client,
    js: jetstream::Context,
    events: Arc<Mutex<Vec<String>>>,
}

impl Probe {
    async fn connect(server: &NatsServer, identity: Identity) -> Self {
        let seed = std::fs::read_to_string(server.seed_file(identity)).expect("seed");
        let events = Arc::new(Mutex::new(Vec::new()));
        let recorded = events.clone();
        let client = async_nats::ConnectOptions::with_nkey(seed.trim().to_owned())
            .custom_inbox_prefix(identity.inbox_prefix())
            .event_callback(move |event| {
                let recorded = recorded.clone();
                async move {
                    if let Ok(mut events) = recorded.lock() {
                        events.push(event.to_string().to_lowercase());
                    }
                }
            })
            .connect(server.url())
            .await
            .unwrap_or_else(|err| panic!("{identity:?} connects: {err}"));
        let js = jetstream::ContextBuilder::new()
            .timeout(Duration::from_millis(700))
            .build(client.clone());
        Self { client, js, events }
    }

    /// Waits until the server reported a permissions violation mentioning `subject`.
    async fn refused(&self, subject: &str) -> bool {
        let needle = subject.to_lowercase();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let seen = self.events.lock().is_ok_and(|events| {
                events
                    .iter()
                    .any(|e| e.contains("permissions violation") && e.contains(&needle))
            });
            if seen || tokio::time::Instant::now() > deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn stream_messages(server: &NatsServer, stream: &str) -> u64 {
    let admin = Probe::connect(server, Identity::Admin).await;
    let mut stream = admin.js.get_stream(stream).await.expect("stream exists");
    stream.info().await.expect("info").state.messages
}

#[tokio::test]
async fn a_client_without_credentials_or_with_unknown_ones_is_refused() {
    let server = NatsServer::start();

    let anonymous = async_nats::connect(server.url()).await;
    assert!(
        matches!(&anonymous, Err(err) if err.kind() == async_nats::ConnectErrorKind::AuthorizationViolation),
        "{:?}",
        anonymous.map(|_| ())
    );

    // A service started without NATS_NKEY_FILE fails at start, naming the setting.
    let config =
        NatsConfig::from_source(&Source::default().with("NATS_URL", server.url())).expect("config");
    let refused = nats::connect("sidechain-edge", &config).await;
    assert!(matches!(refused, Err(ConnectError::Refused)), "{refused:?}");
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("NATS_NKEY_FILE") && message.contains("Authorization Violation"),
        "{message}"
    );

    // A well-formed seed the server does not know.
    let dir = tempfile::tempdir().expect("dir");
    let stranger = dir.path().join("stranger.nk");
    std::fs::write(&stranger, sidechain_infra::identity::new_user_key().0).expect("seed");
    let config = NatsConfig::from_source(
        &Source::default()
            .with("NATS_URL", server.url())
            .with("NATS_NKEY_FILE", stranger.display().to_string()),
    )
    .expect("config");
    let refused = nats::connect("sidechain-cache", &config).await;
    assert!(matches!(refused, Err(ConnectError::Refused)), "{refused:?}");

    // A file that is not a seed stops the service at configuration time.
    let garbage = dir.path().join("garbage.nk");
    std::fs::write(&garbage, "not a seed").expect("write");
    let err = NatsConfig::from_source(
        &Source::default().with("NATS_NKEY_FILE", garbage.display().to_string()),
    )
    .expect_err("not a seed");
    assert!(err.to_string().contains("NATS_NKEY_FILE"), "{err}");

    // Each service's own seed is accepted.
    for identity in Identity::ALL {
        let config = NatsConfig::from_source(&server.source(identity)).expect("config");
        nats::connect(identity.name(), &config)
            .await
            .unwrap_or_else(|err| panic!("{identity:?}: {err}"));
    }
}

#[tokio::test]
async fn only_the_edge_publishes_events() {
    let server = NatsServer::start();
    for identity in [Identity::Cache, Identity::Feedback] {
        let probe = Probe::connect(&server, identity).await;
        let forged = probe
            .js
            .publish("events.like", Bytes::from_static(b"forged"))
            .await
            .expect("sent");
        assert!(forged.await.is_err(), "{identity:?}: no ack for a forgery");
        // A plain publish, not waiting for any ack, is dropped as well.
        probe
            .client
            .publish("events.like", Bytes::from_static(b"forged"))
            .await
            .expect("sent");
        probe.client.flush().await.expect("flush");
        assert!(probe.refused("events.like").await, "{identity:?}");
    }
    assert_eq!(
        stream_messages(&server, "EVENTS").await,
        0,
        "nothing stored"
    );

    let edge = Probe::connect(&server, Identity::Edge).await;
    edge.js
        .publish("events.like", Bytes::from_static(b"real"))
        .await
        .expect("sent")
        .await
        .expect("the edge's event is stored");
    assert_eq!(stream_messages(&server, "EVENTS").await, 1);
}

#[tokio::test]
async fn only_the_edge_reads_and_writes_accounts() {
    let server = NatsServer::start();
    let edge = Probe::connect(&server, Identity::Edge).await;
    let users = edge
        .js
        .get_key_value("users")
        .await
        .expect("edge opens users");
    users
        .put("username.alice", Bytes::from_static(b"alice-id"))
        .await
        .expect("edge writes");
    users
        .put("user.alice-id", Bytes::from_static(b"record"))
        .await
        .expect("edge writes");

    // Feedback cannot even look at the bucket.
    let feedback = Probe::connect(&server, Identity::Feedback).await;
    assert!(feedback.js.get_key_value("users").await.is_err());
    assert!(feedback.refused("$JS.API.STREAM.INFO.KV_users").await);
    let direct = "$JS.API.DIRECT.GET.KV_users.$KV.users.user.alice-id";
    assert!(
        feedback.client.request(direct, Bytes::new()).await.is_err(),
        "feedback reads an account"
    );
    assert!(feedback.refused(direct).await);

    // Cache reads accounts by id (session checks) and nothing else: no usernames or emails,
    // no subscription to the bucket's subjects, no writes.
    let cache = Probe::connect(&server, Identity::Cache).await;
    let bucket = cache
        .js
        .get_key_value("users")
        .await
        .expect("cache opens users");
    let record = bucket.get("user.alice-id").await.expect("allowed read");
    assert_eq!(record.as_deref(), Some(&b"record"[..]));
    assert!(bucket.get("username.alice").await.is_err());
    assert!(cache.refused("username.alice").await);
    let watching = cache.client.subscribe("$KV.users.>").await.expect("sent");
    drop(watching);
    assert!(cache.refused("$KV.users.>").await);
    cache
        .client
        .publish(
            "$KV.users.user.alice-id",
            Bytes::from_static(b"overwritten"),
        )
        .await
        .expect("sent");
    cache.client.flush().await.expect("flush");
    assert!(cache.refused("$KV.users.user.alice-id").await);
    assert!(
        bucket
            .put("user.alice-id", Bytes::from_static(b"x"))
            .await
            .is_err(),
        "cache writes an account"
    );
    let stored = users.get("user.alice-id").await.expect("read");
    assert_eq!(stored.as_deref(), Some(&b"record"[..]), "unchanged");
}

#[tokio::test]
async fn the_cache_reads_accounts_but_never_their_email_or_password_hash() {
    use prost::Message as _;
    use sidechain_events::UserId;
    use sidechain_events::rpc::UserRecord;
    use sidechain_infra::users::UserStore;

    let server = NatsServer::start();
    let edge = Probe::connect(&server, Identity::Edge).await;
    let accounts = UserStore::new(edge.js.clone());
    let id = UserId::new();
    let record = UserRecord {
        id: id.to_string(),
        username: "alice".into(),
        email: "alice@example.com".into(),
        display_name: "Alice".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        ..UserRecord::default()
    };
    accounts.register(&record).await.expect("registered");
    let whole = accounts.by_id(id).await.expect("read").expect("found");
    assert_eq!(
        (whole.email.as_str(), whole.password_hash.as_str()),
        (record.email.as_str(), record.password_hash.as_str())
    );

    // What is stored under the key the cache may read holds no secret.
    let bucket = edge.js.get_key_value("users").await.expect("bucket");
    let stored = bucket
        .get(format!("user.{id}"))
        .await
        .expect("read")
        .expect("stored");
    let stored = UserRecord::decode(stored).expect("decodes");
    assert_eq!(
        (
            stored.username.as_str(),
            stored.email.as_str(),
            stored.password_hash.as_str()
        ),
        ("alice", "", "")
    );

    let cache = Probe::connect(&server, Identity::Cache).await;
    let seen = UserStore::new(cache.js.clone())
        .account(id)
        .await
        .expect("the cache reads the account")
        .expect("found");
    assert_eq!(seen.username, "alice");
    let secret = format!("$JS.API.DIRECT.GET.KV_users.$KV.users.credential.{id}");
    assert!(
        cache
            .client
            .request(secret.clone(), Bytes::new())
            .await
            .is_err(),
        "the cache read a credential"
    );
    assert!(cache.refused(&secret).await);
    assert!(
        UserStore::new(cache.js.clone()).by_id(id).await.is_err(),
        "the whole record is the edge's alone"
    );
}

#[tokio::test]
async fn an_account_from_before_the_split_has_its_secrets_moved_at_sign_in() {
    use prost::Message as _;
    use sidechain_events::UserId;
    use sidechain_events::rpc::UserRecord;
    use sidechain_infra::users::UserStore;

    let server = NatsServer::start();
    let edge = Probe::connect(&server, Identity::Edge).await;
    let bucket = edge.js.get_key_value("users").await.expect("bucket");
    let id = UserId::new();
    let legacy = UserRecord {
        id: id.to_string(),
        username: "old".into(),
        email: "old@example.com".into(),
        password_hash: "old-hash".into(),
        ..UserRecord::default()
    };
    // As the previous release wrote it: one record with everything, and the claims.
    bucket
        .put(format!("user.{id}"), legacy.encode_to_vec().into())
        .await
        .expect("put");
    bucket
        .put("username.old", id.to_string().into())
        .await
        .expect("claim");

    let accounts = UserStore::new(edge.js.clone());
    let signed_in = accounts
        .by_login("old")
        .await
        .expect("read")
        .expect("found");
    assert_eq!(signed_in.password_hash, "old-hash", "still signs in");
    let stored = UserRecord::decode(
        bucket
            .get(format!("user.{id}"))
            .await
            .expect("read")
            .expect("stored"),
    )
    .expect("decodes");
    assert_eq!(
        (stored.email.as_str(), stored.password_hash.as_str()),
        ("", ""),
        "moved"
    );
    let whole = accounts.by_id(id).await.expect("read").expect("found");
    assert_eq!(
        (whole.email.as_str(), whole.password_hash.as_str()),
        ("old@example.com", "old-hash")
    );
}

#[tokio::test]
async fn a_service_cannot_answer_or_overhear_another_services_requests() {
    let server = NatsServer::start();
    let feedback = Probe::connect(&server, Identity::Feedback).await;
    let mut impostor = feedback
        .client
        .subscribe("auth.session")
        .await
        .expect("sent");
    feedback.client.flush().await.expect("flush");
    assert!(feedback.refused("auth.session").await);

    // The edge's replies come on `_INBOX_edge.…`; nobody else may listen there.
    let cache = Probe::connect(&server, Identity::Cache).await;
    let _overhearing = cache.client.subscribe("_INBOX_edge.>").await.expect("sent");
    cache.client.flush().await.expect("flush");
    assert!(cache.refused("_INBOX_edge.>").await);
    let _everything = cache.client.subscribe(">").await.expect("sent");
    cache.client.flush().await.expect("flush");
    assert!(cache.refused("\">\"").await);

    let edge = Probe::connect(&server, Identity::Edge).await;
    let asked = tokio::time::timeout(
        Duration::from_secs(2),
        edge.client
            .request("auth.session", Bytes::from_static(b"token")),
    )
    .await;
    assert!(
        !matches!(asked, Ok(Ok(_))),
        "somebody answered a session check"
    );
    let heard = tokio::time::timeout(
        Duration::from_millis(200),
        futures::StreamExt::next(&mut impostor),
    )
    .await;
    assert!(
        !matches!(heard, Ok(Some(_))),
        "feedback received a session request"
    );

    // The cache, whose subject it is, answers.
    let cache_subscription = cache.client.subscribe("auth.session").await.expect("sub");
    cache.client.flush().await.expect("flush");
    let responder = cache.client.clone();
    tokio::spawn(async move {
        let mut requests = cache_subscription;
        if let Some(request) = futures::StreamExt::next(&mut requests).await
            && let Some(reply) = request.reply
        {
            let _ = responder.publish(reply, Bytes::from_static(b"ok")).await;
        }
    });
    // The cache's subscription can reach the server's routing a moment after its flush under
    // load: ask again on "no responders" for a bounded time, never past a real answer.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let answer = loop {
        match edge
            .client
            .request("auth.session", Bytes::from_static(b"token"))
            .await
        {
            Ok(answer) => break answer,
            Err(err) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(error = %err, "asking the cache again");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("the cache never answered the edge: {err}"),
        }
    };
    assert_eq!(answer.payload, Bytes::from_static(b"ok"));
}

#[tokio::test]
async fn only_the_admin_creates_or_deletes_streams_and_buckets() {
    let server = NatsServer::start();
    for identity in [Identity::Edge, Identity::Cache, Identity::Feedback] {
        let probe = Probe::connect(&server, identity).await;
        let created = probe
            .js
            .create_stream(jetstream::stream::Config {
                name: "STOLEN".to_owned(),
                subjects: vec!["stolen.>".to_owned()],
                ..Default::default()
            })
            .await;
        assert!(created.is_err(), "{identity:?} created a stream");
        assert!(probe.refused("$JS.API.STREAM.CREATE.STOLEN").await);
        assert!(
            probe.js.delete_stream("EVENTS").await.is_err(),
            "{identity:?} deleted EVENTS"
        );
        assert!(probe.refused("$JS.API.STREAM.DELETE.EVENTS").await);
        assert!(
            probe.js.delete_stream("KV_users").await.is_err(),
            "{identity:?} deleted the users bucket"
        );
    }
    let admin = Probe::connect(&server, Identity::Admin).await;
    admin.js.get_stream("EVENTS").await.expect("still there");
    admin.js.get_key_value("users").await.expect("still there");
}

/// Runs `args` as one Redis command on `url`; `Err` holds Redis's refusal.
async fn redis_run(url: &str, args: &[&str]) -> Result<redis::Value, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    command
        .query_async::<redis::Value>(&mut conn)
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn each_redis_identity_is_refused_what_is_not_its_own() {
    use sidechain_test_support::RedisServer;
    let server = RedisServer::start();

    // The default user is off: no password, no Redis.
    let anonymous = format!("redis://127.0.0.1:{}", server.port());
    let refused = redis_run(&anonymous, &["PING"]).await;
    assert!(refused.is_err(), "{refused:?}");
    let wrong = format!("redis://edge:wrong@127.0.0.1:{}", server.port());
    assert!(redis_run(&wrong, &["PING"]).await.is_err());

    let allowed: &[(Identity, &[&[&str]])] = &[
        (
            Identity::Edge,
            &[
                &["PING"],
                &["EXISTS", "revoked:t1"],
                &["SCRIPT", "LOAD", "return 1"],
            ],
        ),
        (
            Identity::Cache,
            &[
                &["HSET", "post:{p1}", "likes", "1"],
                &["SET", "jwt_cache:abc", "x"],
                &["SET", "revoked:t1", "1"],
                &["ZADD", "recent", "1", "p1"],
            ],
        ),
        (
            Identity::Feedback,
            &[
                &["RPUSH", "gorse_failed_feedback", "x"],
                &["LLEN", "{gorse_failed_feedback}:parked"],
            ],
        ),
    ];
    for (identity, commands) in allowed {
        for command in *commands {
            let answer = redis_run(&server.url_for(*identity), command).await;
            assert!(answer.is_ok(), "{identity:?} {command:?}: {answer:?}");
        }
    }

    let refused: &[(Identity, &[&[&str]])] = &[
        (
            Identity::Edge,
            &[
                &["SET", "revoked:t1", "0"],
                &["GET", "jwt_cache:abc"],
                &["HGETALL", "post:{p1}"],
                &["LLEN", "gorse_failed_feedback"],
                &["KEYS", "*"],
                &["FLUSHALL"],
            ],
        ),
        (
            Identity::Cache,
            &[
                &["LLEN", "gorse_failed_feedback"],
                &["SET", "ratelimit:default:x", "1"],
                &["KEYS", "*"],
                &["FLUSHDB"],
                &["CONFIG", "SET", "appendonly", "no"],
            ],
        ),
        (
            Identity::Feedback,
            &[
                &["GET", "jwt_cache:abc"],
                &["HSET", "post:{p1}", "likes", "1000"],
                &["DEL", "recent"],
                &["FLUSHALL"],
                &["ACL", "LIST"],
            ],
        ),
    ];
    for (identity, commands) in refused {
        for command in *commands {
            let answer = redis_run(&server.url_for(*identity), command).await;
            assert!(
                matches!(&answer, Err(e) if e.contains("NOPERM") || e.contains("permission")),
                "{identity:?} {command:?}: {answer:?}"
            );
        }
    }
    // What the refusals would have changed is intact.
    let likes = redis_run(&server.url(), &["HGET", "post:{p1}", "likes"]).await;
    assert_eq!(likes, Ok(redis::Value::BulkString(b"1".to_vec())));
}

#[tokio::test]
async fn services_reach_nats_over_tls_from_a_private_ca_and_nothing_reaches_it_in_the_clear() {
    let server = NatsServer::start_tls();
    // As a service connects (the test server's env carries NATS_TLS_REQUIRED and
    // NATS_TLS_CA_FILE, as the production overlay does), provisioning already went through TLS.
    let config = NatsConfig::from_source(&server.source(Identity::Edge)).expect("config");
    let client = nats::connect("sidechain-edge", &config)
        .await
        .expect("connects over TLS");
    let js = nats::jetstream(client.clone(), &config);
    js.publish("events.like", Bytes::from_static(b"over tls"))
        .await
        .expect("sent")
        .await
        .expect("stored");

    // Without the CA the server's certificate is not trusted; without TLS nothing connects.
    let seed = std::fs::read_to_string(server.seed_file(Identity::Edge)).expect("seed");
    let untrusted = async_nats::ConnectOptions::with_nkey(seed.trim().to_owned())
        .require_tls(true)
        .connect(server.url())
        .await;
    assert!(untrusted.is_err(), "connected trusting only the web roots");
    let port = server
        .url()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut plain = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .expect("tcp");
    let mut info = vec![0u8; 4096];
    let read = tokio::io::AsyncReadExt::read(&mut plain, &mut info)
        .await
        .expect("INFO");
    let info = String::from_utf8_lossy(&info[..read]);
    assert!(info.contains("\"tls_required\":true"), "{info}");
}

#[tokio::test]
async fn services_reach_redis_over_tls_from_a_private_ca() {
    use sidechain_infra::redis::{RedisConfig, connect, readiness_check};

    let server = sidechain_test_support::RedisServer::start_tls();
    let url = server.url_for(Identity::Cache);
    assert!(url.starts_with("rediss://"), "{url}");
    let ca = server
        .ca_file()
        .expect("a TLS server")
        .display()
        .to_string();
    let trusted = RedisConfig::from_source(
        &Source::default()
            .with("REDIS_URL", url.as_str())
            .with("REDIS_TLS_CA_FILE", ca.as_str()),
    )
    .expect("config");
    let ping = readiness_check(connect(&trusted).expect("client"));
    ping().await.expect("PING over TLS as the cache");

    let untrusted = RedisConfig::from_source(&Source::default().with("REDIS_URL", url.as_str()))
        .expect("config");
    let ping = readiness_check(connect(&untrusted).expect("client"));
    assert!(
        ping().await.is_err(),
        "trusted a private CA it was not given"
    );

    // A CA file with a plaintext URL is a mistake, refused at start rather than ignored.
    let refused = RedisConfig::from_source(
        &Source::default()
            .with("REDIS_URL", "redis://127.0.0.1:6379")
            .with("REDIS_TLS_CA_FILE", ca.as_str()),
    );
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("REDIS_TLS_CA_FILE"), "{message}");
}
