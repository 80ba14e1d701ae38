//! Who may do what on NATS: one NKey identity per service plus an admin, and the subjects each
//! one may publish and subscribe to. This file is the permission matrix; the nats-server
//! configuration (`authorization { users = [...] }`) is rendered from it, so the tests' servers,
//! `just up`, compose and Kubernetes all enforce the same lists.
//!
//! Why these subjects: every JetStream operation is a request on a `$JS.API.…` subject, a KV put
//! is a publish on `$KV.<bucket>.<key>`, a KV read is a direct get on
//! `$JS.API.DIRECT.GET.KV_<bucket>.$KV.<bucket>.<key>`, and pull consumers fetch on
//! `$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>` and ack on `$JS.ACK.<stream>.<durable>.>`.
//! Replies come back on the service's own inbox prefix (`_INBOX_<service>.>`), which no other
//! identity may subscribe to. Creating or deleting streams and buckets is the admin's alone
//! (`sidechain-nats-admin provision`).

use std::fmt::Write as _;
use std::path::Path;

use sidechain_events::subjects;

/// A NATS identity: each service connects as its own, the admin provisions streams and buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Identity {
    /// The HTTP API: publishes events, owns the `users` and `idempotency` buckets.
    Edge,
    /// Read models: consumes `EVENTS` as `cache-read-models`, answers feed/session/lookup requests.
    Cache,
    /// Gorse feedback: consumes `EVENTS` as `feedback`, writes the `status` bucket.
    Feedback,
    /// Audio processing: consumes `audio_uploaded` as `media`, reads uploads from and writes
    /// waveforms to the `audio` object bucket, publishes `audio_processed`/`audio_rejected`.
    Media,
    /// Operators and the provisioning step: everything, including stream management.
    Admin,
}

/// What an identity may do, as nats-server understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    /// Subjects it may publish to.
    pub publish: Vec<String>,
    /// Subjects it may subscribe to.
    pub subscribe: Vec<String>,
    /// Whether it may reply to requests it received (a responder).
    pub allow_responses: bool,
}

/// The pull-consumer subjects of one durable consumer on `EVENTS`: look it up, create or update
/// it, fetch, ack, and (for a rebuild) delete it.
fn durable_consumer(durable: &str) -> Vec<String> {
    let stream = subjects::EVENTS_STREAM;
    vec![
        format!("$JS.API.CONSUMER.INFO.{stream}.{durable}"),
        format!("$JS.API.CONSUMER.CREATE.{stream}.{durable}"),
        format!("$JS.API.CONSUMER.CREATE.{stream}.{durable}.>"),
        format!("$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"),
        format!("$JS.ACK.{stream}.{durable}.>"),
    ]
}

/// Following a KV key with a watch: an ordered (ephemeral) consumer on the bucket's stream.
fn kv_watch(bucket: &str) -> Vec<String> {
    vec![
        format!("$JS.API.STREAM.INFO.KV_{bucket}"),
        format!("$JS.API.CONSUMER.CREATE.KV_{bucket}"),
        format!("$JS.API.CONSUMER.CREATE.KV_{bucket}.>"),
        format!("$JS.API.CONSUMER.DELETE.KV_{bucket}.>"),
        format!("$JS.FC.KV_{bucket}.>"),
    ]
}

/// Reading and writing every key of a KV bucket.
fn kv_read_write(bucket: &str) -> Vec<String> {
    vec![
        format!("$JS.API.STREAM.INFO.KV_{bucket}"),
        format!("$JS.API.DIRECT.GET.KV_{bucket}.>"),
        format!("$JS.API.STREAM.MSG.GET.KV_{bucket}"),
        format!("$KV.{bucket}.>"),
    ]
}

/// Storing, reading and deleting objects of an object-store bucket: chunks and metadata are
/// published on `$O.<bucket>.C.>`/`$O.<bucket>.M.>`; metadata is read with a direct get; an
/// object is read through an ordered (ephemeral) consumer on the bucket's stream; replacing or
/// deleting an object purges its chunks.
fn object_read_write(bucket: &str) -> Vec<String> {
    let stream = format!("OBJ_{bucket}");
    vec![
        format!("$JS.API.STREAM.INFO.{stream}"),
        format!("$JS.API.DIRECT.GET.{stream}.>"),
        format!("$JS.API.STREAM.MSG.GET.{stream}"),
        format!("$JS.API.STREAM.PURGE.{stream}"),
        format!("$JS.API.CONSUMER.CREATE.{stream}"),
        format!("$JS.API.CONSUMER.CREATE.{stream}.>"),
        format!("$JS.API.CONSUMER.DELETE.{stream}.>"),
        format!("$JS.FC.{stream}.>"),
        format!("$O.{bucket}.>"),
    ]
}

impl Identity {
    /// Every identity, services first.
    pub const ALL: [Identity; 5] = [
        Identity::Edge,
        Identity::Cache,
        Identity::Feedback,
        Identity::Media,
        Identity::Admin,
    ];

    /// Its name: the seed file is `<name>.nk`, the inbox prefix `_INBOX_<name>`.
    pub fn name(self) -> &'static str {
        match self {
            Identity::Edge => "edge",
            Identity::Cache => "cache",
            Identity::Feedback => "feedback",
            Identity::Media => "media",
            Identity::Admin => "admin",
        }
    }

    /// The identity a service named `service` (`edge` or `sidechain-edge`) connects as
    /// (`None` for anything else).
    pub fn of_service(service: &str) -> Option<Self> {
        let name = service.strip_prefix("sidechain-").unwrap_or(service);
        Self::ALL
            .into_iter()
            .find(|identity| identity.name() == name)
    }

    /// The inbox prefix of its replies; only this identity may subscribe below it.
    pub fn inbox_prefix(self) -> String {
        format!("_INBOX_{}", self.name())
    }

    /// What it may do; `None` for the admin, who may do everything.
    pub fn permissions(self) -> Option<Permissions> {
        let inbox = format!("{}.>", self.inbox_prefix());
        let events = subjects::EVENTS_STREAM;
        let stream_info = format!("$JS.API.STREAM.INFO.{events}");
        let owned = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let permissions = match self {
            Identity::Admin => return None,
            Identity::Edge => {
                let mut publish = owned(&[
                    subjects::EVENTS_ALL,
                    subjects::AUTH_REVOKED,
                    subjects::AUTH_SESSION,
                    subjects::LOOKUP_POST,
                    subjects::LOOKUP_COMMENT,
                    subjects::COMMENTS_LIST,
                    subjects::USERS_PROFILE,
                    subjects::USERS_FOLLOWERS,
                    subjects::USERS_FOLLOWING,
                    "feed.*",
                ]);
                publish.push(stream_info);
                publish.extend(kv_read_write(subjects::USERS_BUCKET));
                publish.extend(kv_read_write(subjects::IDEMPOTENCY_BUCKET));
                publish.extend(kv_watch(subjects::STATUS_BUCKET));
                // Uploads are stored (and removed again when their event cannot be) and served.
                publish.extend(object_read_write(subjects::AUDIO_BUCKET));
                Permissions {
                    publish,
                    subscribe: vec![
                        inbox,
                        subjects::AUTH_REVOKED.to_owned(),
                        subjects::CACHE_INVALIDATE.to_owned(),
                    ],
                    allow_responses: false,
                }
            }
            Identity::Cache => {
                let mut publish = owned(&[subjects::AUTH_REVOKED, subjects::CACHE_INVALIDATE]);
                publish.push(stream_info);
                publish.extend(durable_consumer(subjects::CACHE_CONSUMER));
                // A rebuild (Redis lost the read models) replays the stream from the start by
                // deleting its own consumer.
                publish.push(format!(
                    "$JS.API.CONSUMER.DELETE.{events}.{}",
                    subjects::CACHE_CONSUMER
                ));
                // Session checks read accounts by id, never by username or email.
                publish.push(format!("$JS.API.STREAM.INFO.KV_{}", subjects::USERS_BUCKET));
                publish.push(format!(
                    "$JS.API.DIRECT.GET.KV_{0}.$KV.{0}.user.*",
                    subjects::USERS_BUCKET
                ));
                publish.extend(kv_watch(subjects::STATUS_BUCKET));
                Permissions {
                    publish,
                    subscribe: vec![
                        inbox,
                        "feed.*".to_owned(),
                        subjects::AUTH_SESSION.to_owned(),
                        subjects::LOOKUP_POST.to_owned(),
                        subjects::LOOKUP_COMMENT.to_owned(),
                        subjects::COMMENTS_LIST.to_owned(),
                        subjects::POSTS_GET.to_owned(),
                        subjects::USERS_PROFILE.to_owned(),
                        subjects::USERS_FOLLOWERS.to_owned(),
                        subjects::USERS_FOLLOWING.to_owned(),
                        subjects::CACHE_INVALIDATE.to_owned(),
                    ],
                    allow_responses: true,
                }
            }
            Identity::Feedback => {
                // `posts.get`: resolving hidden placeholder items from the read models.
                let mut publish = vec![stream_info, subjects::POSTS_GET.to_owned()];
                publish.extend(durable_consumer(subjects::FEEDBACK_CONSUMER));
                publish.extend(kv_read_write(subjects::STATUS_BUCKET));
                Permissions {
                    publish,
                    subscribe: vec![inbox],
                    allow_responses: false,
                }
            }
            Identity::Media => {
                let mut publish = vec![
                    stream_info,
                    format!("{}audio_processed", subjects::EVENTS_PREFIX),
                    format!("{}audio_rejected", subjects::EVENTS_PREFIX),
                ];
                publish.extend(durable_consumer(subjects::MEDIA_CONSUMER));
                publish.extend(object_read_write(subjects::AUDIO_BUCKET));
                Permissions {
                    publish,
                    subscribe: vec![inbox],
                    allow_responses: false,
                }
            }
        };
        Some(permissions)
    }
}

/// Commands every Redis identity needs to connect and be probed: AUTH/HELLO/SELECT/PING and the
/// `CLIENT SETINFO` the client sends on connect.
const REDIS_CONNECT: &str = "+@connection -@dangerous";

/// Scripts: the client runs `EVALSHA`, and `SCRIPT LOAD`/`EVAL` when Redis lost the script.
const REDIS_SCRIPTS: &str = "+evalsha +eval +script|load +script|exists";

impl Identity {
    /// Its Redis ACL rules: the commands and key patterns it needs (`None` for the admin: all).
    /// Key builders: `services/edge/src/rate_limit/mod.rs` (`ratelimit:`),
    /// `shared/infra/src/sessions.rs` (`jwt_cache:`, `revoked:`), `services/cache/src/keys.rs`,
    /// `services/feedback/src/dead_letter.rs` (`gorse_failed_feedback`).
    pub fn redis_rules(self) -> Option<String> {
        let rules = match self {
            Identity::Admin => return None,
            // Rate-limit buckets (a GCRA script: TIME, GET, SET) and the revocation check of
            // the local fallback (read only).
            Identity::Edge => format!(
                "{REDIS_CONNECT} {REDIS_SCRIPTS} +time +get +set +exists ~ratelimit:* %R~revoked:*"
            ),
            // Read models, page cache, sessions and revocations: reads, writes, transactions and
            // scripts on its own keys; nothing that spans the keyspace (KEYS, FLUSHDB, …).
            Identity::Cache => format!(
                "{REDIS_CONNECT} +@read +@write +@transaction {REDIS_SCRIPTS} -@dangerous \
                 ~post:* ~post_likes:* ~post_reposts:* ~post_reactions:* ~post_reaction_counts:* \
                 ~post_comments:* ~post_comment_data:* \
                 ~comment:* ~user_posts:* ~following:* ~followers:* ~timeline:* ~recent \
                 ~big_authors ~readmodel:* ~page:* ~jwt_cache:* ~revoked:* ~session_epoch:* \
                 ~profile:* ~followers_by_time:* ~following_by_time:*"
            ),
            // The dead-letter list, its processing and parked lists and its flush lock; the
            // placeholders waiting to be resolved (`services/feedback/src/reconcile.rs`).
            Identity::Feedback => format!(
                "{REDIS_CONNECT} {REDIS_SCRIPTS} +rpush +llen +lmove +lrem +lrange +set +get +del \
                 +zadd +zrange +zrem +zcard \
                 ~gorse_failed_feedback ~{{gorse_failed_feedback}}:* ~gorse_placeholders"
            ),
            // No keys: it only connects, for the shared readiness check.
            Identity::Media => REDIS_CONNECT.to_owned(),
        };
        Some(rules)
    }
}

/// A Redis ACL file (`redis-server --aclfile`): the default user off, one user per identity
/// with its password and rules.
pub fn redis_acl(passwords: &[(Identity, String)]) -> String {
    let mut out = String::from("user default off\n");
    for (identity, password) in passwords {
        let rules = identity
            .redis_rules()
            .unwrap_or_else(|| "~* &* +@all".to_owned());
        let _ = writeln!(out, "user {} on >{password} {rules}", identity.name());
    }
    out
}

/// The Redis password file of `identity` in `dir`.
pub fn redis_password_path(dir: &Path, identity: Identity) -> std::path::PathBuf {
    dir.join(format!("{}.redis-password", identity.name()))
}

/// Makes sure `dir` holds a Redis password per identity (keeping existing ones) and writes
/// `dir/users.acl` for `redis-server --aclfile`.
pub fn write_redis_acl(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut passwords = Vec::new();
    for identity in Identity::ALL {
        let path = redis_password_path(dir, identity);
        let password = match std::fs::read_to_string(&path) {
            Ok(password) => password.trim().to_owned(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let password = hex::encode(rand::random::<[u8; 24]>());
                write_private(&path, &password)?;
                password
            }
            Err(err) => return Err(err),
        };
        passwords.push((identity, password));
    }
    std::fs::write(dir.join("users.acl"), redis_acl(&passwords))
}

/// Creates a new NKey user; returns (seed, public key).
pub fn new_user_key() -> (String, String) {
    let pair = nkeys::KeyPair::new_user();
    // A freshly made pair always has its seed.
    let seed = pair.seed().unwrap_or_default();
    (seed, pair.public_key())
}

/// The public key of a seed, or why the seed is not one.
pub fn public_key_of(seed: &str) -> Result<String, String> {
    nkeys::KeyPair::from_seed(seed.trim())
        .map(|pair| pair.public_key())
        .map_err(|err| err.to_string())
}

fn quoted_list(subjects: &[String]) -> String {
    let items: Vec<String> = subjects.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", items.join(", "))
}

/// The nats-server `authorization` block for these public keys (one per identity; several per
/// identity during a rotation). Accepted by nats-server 2.9 and later.
pub fn server_authorization(keys: &[(Identity, String)]) -> String {
    let mut out = String::from(
        "# Generated by `sidechain-nats-admin keys` from shared/infra/src/identity.rs.\n\
         # One NKey user per Sidechain service plus an admin; see docs/operations.md.\n\
         authorization {\n  users = [\n",
    );
    for (identity, public_key) in keys {
        let _ = writeln!(out, "    # {}", identity.name());
        match identity.permissions() {
            None => {
                let _ = writeln!(out, "    {{ nkey: {public_key} }}");
            }
            Some(p) => {
                let _ = writeln!(out, "    {{");
                let _ = writeln!(out, "      nkey: {public_key}");
                let _ = writeln!(out, "      permissions: {{");
                let _ = writeln!(
                    out,
                    "        publish: {{ allow: {} }}",
                    quoted_list(&p.publish)
                );
                let _ = writeln!(
                    out,
                    "        subscribe: {{ allow: {} }}",
                    quoted_list(&p.subscribe)
                );
                if p.allow_responses {
                    let _ = writeln!(out, "        allow_responses: true");
                }
                let _ = writeln!(out, "      }}");
                let _ = writeln!(out, "    }}");
            }
        }
    }
    out.push_str("  ]\n}\n");
    out
}

/// The seed file of `identity` in `dir`.
pub fn seed_path(dir: &Path, identity: Identity) -> std::path::PathBuf {
    dir.join(format!("{}.nk", identity.name()))
}

/// Makes sure `dir` holds a seed for every identity (keeping existing ones) and writes
/// `dir/auth.conf` for the server from their public keys. Seeds are written owner-readable only.
pub fn write_keys(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut keys = Vec::new();
    for identity in Identity::ALL {
        let path = seed_path(dir, identity);
        let public = match std::fs::read_to_string(&path) {
            Ok(seed) => public_key_of(&seed).map_err(|err| {
                std::io::Error::other(format!("{} is not an NKey seed: {err}", path.display()))
            })?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let (seed, public) = new_user_key();
                write_private(&path, &seed)?;
                public
            }
            Err(err) => return Err(err),
        };
        keys.push((identity, public));
    }
    std::fs::write(dir.join("auth.conf"), server_authorization(&keys))
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    use std::io::Write as _;
    options.open(path)?.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_edge_publishes_events_and_writes_accounts() {
        for identity in [Identity::Cache, Identity::Feedback] {
            let p = identity.permissions().expect("restricted");
            assert!(
                !p.publish
                    .iter()
                    .any(|s| s.starts_with("events.") || s.starts_with("$KV.users")),
                "{identity:?}: {:?}",
                p.publish
            );
            assert!(
                !p.publish
                    .iter()
                    .any(|s| s.starts_with("$JS.API.STREAM.CREATE")
                        || s.starts_with("$JS.API.STREAM.DELETE")),
                "{identity:?} manages streams"
            );
        }
        let edge = Identity::Edge.permissions().expect("restricted");
        assert!(edge.publish.contains(&"events.>".to_owned()));
        assert!(Identity::Admin.permissions().is_none());
    }

    #[test]
    fn the_feedback_service_asks_for_posts_and_only_the_cache_answers() {
        let feedback = Identity::Feedback.permissions().expect("restricted");
        assert!(feedback.publish.contains(&subjects::POSTS_GET.to_owned()));
        for identity in [Identity::Edge, Identity::Cache, Identity::Feedback] {
            let p = identity.permissions().expect("restricted");
            assert_eq!(
                p.subscribe.contains(&subjects::POSTS_GET.to_owned()),
                identity == Identity::Cache,
                "{identity:?} subscribes {:?}",
                p.subscribe
            );
        }
        let redis = Identity::Feedback.redis_rules().expect("restricted");
        assert!(redis.contains("~gorse_placeholders") && redis.contains("+zadd"));
    }

    #[test]
    fn each_service_reads_replies_only_on_its_own_inbox() {
        for identity in [Identity::Edge, Identity::Cache, Identity::Feedback] {
            let p = identity.permissions().expect("restricted");
            let inboxes: Vec<_> = p
                .subscribe
                .iter()
                .filter(|s| s.starts_with("_INBOX"))
                .collect();
            assert_eq!(inboxes, [&format!("_INBOX_{}.>", identity.name())]);
        }
    }

    #[test]
    fn keys_are_generated_once_and_the_config_names_every_public_key() {
        let dir = tempfile::tempdir().expect("dir");
        write_keys(dir.path()).expect("keys");
        let first = std::fs::read_to_string(dir.path().join("auth.conf")).expect("conf");
        write_keys(dir.path()).expect("again");
        let second = std::fs::read_to_string(dir.path().join("auth.conf")).expect("conf");
        assert_eq!(first, second, "existing seeds are kept");
        for identity in Identity::ALL {
            let seed = std::fs::read_to_string(seed_path(dir.path(), identity)).expect("seed");
            let public = public_key_of(&seed).expect("a seed");
            assert!(public.starts_with('U'));
            assert!(first.contains(&public), "{identity:?} missing");
        }
    }
}
