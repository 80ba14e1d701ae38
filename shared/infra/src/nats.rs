//! NATS: connection, the `EVENTS` stream and KV buckets, event publishing and request/reply.
//!
//! The client connects in the background and reconnects forever, so a service started before
//! NATS runs and turns ready once NATS appears. Callers that must not wait (the edge answering
//! a request) check [`is_connected`] and fail fast instead of queueing behind a dead link.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use async_nats::{Client, ConnectOptions, HeaderMap};
use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use prost::Message;
use serde::Deserialize;
use sidechain_config::{ConfigError, Source};
use sidechain_events::{NewEvent, subjects};
use tokio_util::sync::CancellationToken;

/// Connection settings. Field `foo` is variable `FOO`.
#[derive(Debug, Clone, Deserialize)]
pub struct NatsConfig {
    /// `NATS_URL`: one or more comma-separated server URLs.
    #[serde(default = "default_url")]
    pub nats_url: String,
    /// `NATS_USER` / `NATS_PASSWORD`: user and password authentication.
    #[serde(default)]
    pub nats_user: Option<String>,
    /// See `nats_user`.
    #[serde(default)]
    pub nats_password: Option<String>,
    /// `NATS_TOKEN`: token authentication.
    #[serde(default)]
    pub nats_token: Option<String>,
    /// `NATS_CREDS_FILE`: a `.creds` file (JWT + NKey), as issued by an operator.
    #[serde(default)]
    pub nats_creds_file: Option<PathBuf>,
    /// `NATS_NKEY_FILE`: the NKey seed file of this service's identity (`<service>.nk`, made by
    /// `sidechain-nats-admin keys`). The server's configuration lists its public key and what it
    /// may publish and subscribe to.
    #[serde(default)]
    pub nats_nkey_file: Option<PathBuf>,
    /// `NATS_TLS_REQUIRED`: refuse plaintext connections.
    #[serde(default)]
    pub nats_tls_required: bool,
    /// `NATS_TLS_CA_FILE`: extra root certificate (PEM) to trust for the server.
    #[serde(default)]
    pub nats_tls_ca_file: Option<PathBuf>,
    /// `NATS_REQUEST_TIMEOUT`: how long a JetStream publish ack or a request/reply may take.
    #[serde(
        default = "default_request_timeout",
        with = "sidechain_config::duration"
    )]
    pub nats_request_timeout: Duration,
}

fn default_url() -> String {
    "nats://127.0.0.1:4222".to_owned()
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(3)
}

impl NatsConfig {
    /// Reads and checks the settings.
    pub fn from_source(source: &Source) -> Result<Self, ConfigError> {
        let config: Self = sidechain_config::load(source)?;
        for url in config.nats_url.split(',') {
            let url = url.trim();
            let has_host = ["nats://", "tls://", "ws://", "wss://"]
                .iter()
                .filter_map(|scheme| url.strip_prefix(scheme))
                .any(|rest| !rest.is_empty());
            if !has_host || url.parse::<async_nats::ServerAddr>().is_err() {
                return Err(ConfigError::invalid(
                    "NATS_URL",
                    format!("'{url}' is not a NATS URL such as nats://127.0.0.1:4222"),
                ));
            }
        }
        if config.nats_user.is_some() != config.nats_password.is_some() {
            return Err(ConfigError::invalid(
                "NATS_USER",
                "NATS_USER and NATS_PASSWORD must be set together",
            ));
        }
        if config.nats_request_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "NATS_REQUEST_TIMEOUT",
                "must be greater than 0",
            ));
        }
        if let Some(path) = &config.nats_nkey_file {
            if config.nats_creds_file.is_some() {
                return Err(ConfigError::invalid(
                    "NATS_NKEY_FILE",
                    "set NATS_NKEY_FILE or NATS_CREDS_FILE, not both",
                ));
            }
            read_seed(path).map_err(|reason| ConfigError::invalid("NATS_NKEY_FILE", reason))?;
        }
        Ok(config)
    }
}

/// The seed in an NKey seed file, checked.
fn read_seed(path: &std::path::Path) -> Result<String, String> {
    let seed = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    let seed = seed.trim().to_owned();
    crate::identity::public_key_of(&seed)
        .map_err(|err| format!("{} does not hold an NKey seed: {err}", path.display()))?;
    Ok(seed)
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            nats_url: default_url(),
            nats_user: None,
            nats_password: None,
            nats_token: None,
            nats_creds_file: None,
            nats_nkey_file: None,
            nats_tls_required: false,
            nats_tls_ca_file: None,
            nats_request_timeout: default_request_timeout(),
        }
    }
}

/// The connection could not even be attempted (bad credentials file), or the server refused it.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// `NATS_CREDS_FILE` is unreadable.
    #[error("cannot read NATS_CREDS_FILE: {0}")]
    Credentials(std::io::Error),
    /// `NATS_NKEY_FILE` is unreadable or holds no seed.
    #[error("NATS_NKEY_FILE: {0}")]
    NkeyFile(String),
    /// The server answered "Authorization Violation": no credentials, or ones it does not know.
    #[error(
        "NATS refused the connection (Authorization Violation): set NATS_NKEY_FILE to this \
         service's seed file, one whose public key is in the server's configuration"
    )]
    Refused,
    /// The client refused the options.
    #[error("cannot connect to NATS: {0}")]
    Client(#[from] async_nats::ConnectError),
}

/// How the first connection attempt went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FirstAttempt {
    Pending,
    Connected,
    Unreachable,
    Refused,
}

/// How long [`connect`] waits for the first attempt's outcome before returning anyway.
const FIRST_ATTEMPT_WAIT: Duration = Duration::from_secs(3);

/// Connects as `service` (a service name is also its [`Identity`](crate::identity::Identity):
/// its replies then come on its own inbox prefix). The connection is made (and remade) in the
/// background with capped exponential backoff, so this returns as soon as the first attempt
/// either worked or found no server; when the server refuses the credentials it fails with
/// [`ConnectError::Refused`] instead of retrying forever.
pub async fn connect(service: &str, config: &NatsConfig) -> Result<Client, ConnectError> {
    let options = match (&config.nats_creds_file, &config.nats_nkey_file) {
        (Some(path), _) => ConnectOptions::with_credentials_file(path)
            .await
            .map_err(ConnectError::Credentials)?,
        (None, Some(path)) => {
            ConnectOptions::with_nkey(read_seed(path).map_err(ConnectError::NkeyFile)?)
        }
        (None, None) => ConnectOptions::new(),
    };
    let options = match crate::identity::Identity::of_service(service) {
        Some(identity) => options.custom_inbox_prefix(identity.inbox_prefix()),
        None => options,
    };
    let (first_tx, mut first_rx) = tokio::sync::watch::channel(FirstAttempt::Pending);
    let first_tx = std::sync::Arc::new(first_tx);
    let mut options = options
        .name(service)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .request_timeout(Some(config.nats_request_timeout))
        .reconnect_delay_callback(|attempt| {
            // 50 ms doubling to 2 s: quick to come back after a restart, gentle when down.
            let exponent = u32::try_from(attempt.min(6)).unwrap_or(6);
            Duration::from_millis(50 * 2u64.pow(exponent)).min(Duration::from_secs(2))
        })
        .event_callback(move |event| {
            let first_tx = first_tx.clone();
            async move {
            let outcome = match &event {
                async_nats::Event::Connected => FirstAttempt::Connected,
                async_nats::Event::ClientError(async_nats::ClientError::Other(reason))
                    if reason.contains("authorization violation") =>
                {
                    FirstAttempt::Refused
                }
                async_nats::Event::ClientError(_) => FirstAttempt::Unreachable,
                _ => FirstAttempt::Pending,
            };
            first_tx.send_if_modified(|state| {
                let first = *state == FirstAttempt::Pending && outcome != FirstAttempt::Pending;
                if first {
                    *state = outcome;
                }
                first
            });
            match event {
                async_nats::Event::Connected => tracing::info!("NATS connected"),
                async_nats::Event::ClientError(async_nats::ClientError::Other(reason))
                    if reason.contains("authorization violation") =>
                {
                    tracing::error!(
                        "NATS refused the credentials (Authorization Violation); check NATS_NKEY_FILE"
                    )
                }
                async_nats::Event::Disconnected => {
                    tracing::warn!("NATS disconnected; reconnecting")
                }
                async_nats::Event::LameDuckMode => {
                    tracing::warn!("NATS server entering lame duck mode")
                }
                other => tracing::warn!(event = %other, "NATS client event"),
            }
            }
        });
    if let (Some(user), Some(password)) = (&config.nats_user, &config.nats_password) {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(token) = &config.nats_token {
        options = options.token(token.clone());
    }
    if config.nats_tls_required {
        options = options.require_tls(true);
    }
    if let Some(ca) = &config.nats_tls_ca_file {
        options = options.add_root_certificates(ca.clone());
    }
    let urls: Vec<async_nats::ServerAddr> = config
        .nats_url
        .split(',')
        .filter_map(|u| u.trim().parse().ok())
        .collect();
    let client = options.connect(urls).await?;
    let first = tokio::time::timeout(
        FIRST_ATTEMPT_WAIT,
        first_rx.wait_for(|state| *state != FirstAttempt::Pending),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .map(|state| *state);
    if first == Some(FirstAttempt::Refused) {
        return Err(ConnectError::Refused);
    }
    Ok(client)
}

/// Whether the client currently has a live connection.
pub fn is_connected(client: &Client) -> bool {
    client.connection_state() == async_nats::connection::State::Connected
}

/// A readiness check for the connection.
pub fn readiness_check(
    client: Client,
) -> impl Fn() -> futures::future::Ready<Result<(), String>> + Send + Sync + 'static {
    move || {
        futures::future::ready(if is_connected(&client) {
            Ok(())
        } else {
            Err(format!("{:?}", client.connection_state()).to_lowercase())
        })
    }
}

/// The JetStream context used for publishing and stream management.
pub fn jetstream(client: Client, config: &NatsConfig) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(config.nats_request_timeout)
        .build(client)
}

/// How the `EVENTS` stream is kept. Field `foo` is variable `FOO`.
#[derive(Debug, Clone, Deserialize)]
pub struct StreamConfig {
    /// `EVENTS_REPLICAS`: copies kept in a JetStream cluster (1 on a single server, 3 in production).
    #[serde(default = "default_replicas")]
    pub events_replicas: usize,
    /// `EVENTS_MAX_AGE`: drop events older than this; `0` (the default) keeps them forever,
    /// which the cache service needs to rebuild its read models from the stream.
    #[serde(default = "zero", with = "sidechain_config::duration")]
    pub events_max_age: Duration,
    /// `EVENTS_MAX_BYTES`: size cap; `-1` (the default) is unlimited. When full, new events are
    /// refused (the edge answers 503) rather than old ones dropped.
    #[serde(default = "unlimited")]
    pub events_max_bytes: i64,
    /// `EVENTS_DUPLICATE_WINDOW`: how long a `Nats-Msg-Id` is remembered for deduplication.
    #[serde(
        default = "default_duplicate_window",
        with = "sidechain_config::duration"
    )]
    pub events_duplicate_window: Duration,
}

fn default_replicas() -> usize {
    1
}

fn zero() -> Duration {
    Duration::ZERO
}

fn unlimited() -> i64 {
    -1
}

fn default_duplicate_window() -> Duration {
    Duration::from_secs(120)
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            events_replicas: default_replicas(),
            events_max_age: zero(),
            events_max_bytes: unlimited(),
            events_duplicate_window: default_duplicate_window(),
        }
    }
}

impl StreamConfig {
    /// Reads and checks the settings.
    pub fn from_source(source: &Source) -> Result<Self, ConfigError> {
        let config: Self = sidechain_config::load(source)?;
        if !(1..=5).contains(&config.events_replicas) {
            return Err(ConfigError::invalid("EVENTS_REPLICAS", "must be 1 to 5"));
        }
        if config.events_duplicate_window.is_zero() {
            return Err(ConfigError::invalid(
                "EVENTS_DUPLICATE_WINDOW",
                "must be greater than 0",
            ));
        }
        Ok(config)
    }

    /// The JetStream configuration of the stream.
    pub fn stream_config(&self) -> stream::Config {
        stream::Config {
            name: subjects::EVENTS_STREAM.to_owned(),
            description: Some(
                "Every accepted write of the Sidechain API (see docs/events.md)".to_owned(),
            ),
            subjects: vec![subjects::EVENTS_ALL.to_owned()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::New,
            max_age: self.events_max_age,
            max_bytes: self.events_max_bytes,
            max_messages: -1,
            num_replicas: self.events_replicas,
            duplicate_window: self.events_duplicate_window,
            ..Default::default()
        }
    }
}

/// Creates the `EVENTS` stream, or updates its limits if it exists. Safe to run on every start
/// of every instance.
pub async fn ensure_events_stream(
    js: &jetstream::Context,
    config: &StreamConfig,
) -> Result<stream::Info, async_nats::Error> {
    Ok(js.create_or_update_stream(config.stream_config()).await?)
}

/// Opens the KV bucket `name`, which provisioning created (services may not create buckets).
pub async fn open_kv_bucket(
    js: &jetstream::Context,
    name: &str,
) -> Result<kv::Store, async_nats::Error> {
    js.get_key_value(name).await.map_err(|err| {
        if err.kind() == jetstream::context::KeyValueErrorKind::GetBucket {
            format!("KV bucket {name} not found (run `sidechain-nats-admin provision`): {err}")
                .into()
        } else {
            err.into()
        }
    })
}

/// Opens a KV bucket, creating it with `config` if it does not exist yet (provisioning, as the
/// admin identity).
pub async fn ensure_kv_bucket(
    js: &jetstream::Context,
    config: kv::Config,
) -> Result<kv::Store, async_nats::Error> {
    match js.get_key_value(&config.bucket).await {
        Ok(store) => Ok(store),
        Err(err) if err.kind() == jetstream::context::KeyValueErrorKind::GetBucket => {
            // Created through the stream API: `create_key_value` first asks for account info,
            // which async-nats cannot parse from nats-server 2.9 (Debian's, often the one
            // already running); the bucket is this stream either way.
            if let Err(create) = js.create_stream(kv_stream_config(&config)).await {
                tracing::debug!(bucket = config.bucket, error = %create, "bucket creation raced or failed; opening it");
            }
            Ok(js.get_key_value(&config.bucket).await?)
        }
        Err(err) => Err(err.into()),
    }
}

/// The stream behind a KV bucket, as async-nats's `create_key_value` builds it.
fn kv_stream_config(config: &kv::Config) -> stream::Config {
    stream::Config {
        name: format!("KV_{}", config.bucket),
        description: Some(config.description.clone()),
        subjects: vec![format!("$KV.{}.>", config.bucket)],
        max_messages_per_subject: config.history.max(1),
        max_bytes: config.max_bytes,
        max_age: config.max_age,
        max_message_size: config.max_value_size,
        storage: config.storage,
        allow_rollup: true,
        deny_delete: true,
        deny_purge: false,
        allow_direct: true,
        num_replicas: config.num_replicas.max(1),
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    }
}

/// Why an event was not stored.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// NATS or the stream is unreachable or did not acknowledge in time; the caller may retry
    /// with the same event id (deduplication makes that safe).
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    /// The stream refused the event (too large, stream full); retrying will not help.
    #[error("event refused by the stream: {0}")]
    Rejected(String),
}

/// The stream stored the event (or had already stored one with the same id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// Stream sequence of the event.
    pub sequence: u64,
    /// True when this publish was a duplicate of an earlier one with the same id.
    pub duplicate: bool,
}

/// Publishes an event on `events.<kind>` and waits for the stream's acknowledgement.
///
/// Headers: `Nats-Msg-Id` = event id (deduplication within the stream's window) and the current
/// trace context (`traceparent`).
pub async fn publish_event(
    js: &jetstream::Context,
    event: &NewEvent,
) -> Result<Stored, PublishError> {
    if !is_connected(&js.client()) {
        return Err(PublishError::Unavailable(
            "not connected to NATS".to_owned(),
        ));
    }
    let mut headers = HeaderMap::new();
    sidechain_telemetry::propagation::inject_nats(&mut headers);
    let publish = jetstream::message::PublishMessage::build()
        .payload(Bytes::from(event.encode()))
        .headers(headers)
        .message_id(event.id.to_string());
    let ack = js
        .send_publish(event.subject(), publish)
        .await
        .map_err(classify_publish_error)?
        .await
        .map_err(classify_publish_error)?;
    Ok(Stored {
        sequence: ack.sequence,
        duplicate: ack.duplicate,
    })
}

fn classify_publish_error(err: jetstream::context::PublishError) -> PublishError {
    use jetstream::context::PublishErrorKind as Kind;
    match err.kind() {
        Kind::MaxPayloadExceeded | Kind::WrongLastMessageId | Kind::WrongLastSequence => {
            PublishError::Rejected(err.to_string())
        }
        _ => PublishError::Unavailable(err.to_string()),
    }
}

/// Why a request/reply exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Nobody serves the subject (the service is not running) or NATS is down.
    #[error("no service is answering {0}")]
    NoResponders(String),
    /// The service did not answer in time.
    #[error("{0} did not answer in time")]
    TimedOut(String),
    /// The reply is not the expected message.
    #[error("unreadable reply from {subject}: {reason}")]
    BadReply {
        /// The subject asked.
        subject: String,
        /// Why the reply could not be decoded.
        reason: String,
    },
}

/// Sends a protobuf request and decodes the protobuf reply, carrying the trace context.
pub async fn request<Req: Message, Rep: Message + Default>(
    client: &Client,
    subject: &str,
    request: &Req,
    timeout: Duration,
) -> Result<Rep, RequestError> {
    if !is_connected(client) {
        return Err(RequestError::NoResponders(subject.to_owned()));
    }
    let mut headers = HeaderMap::new();
    sidechain_telemetry::propagation::inject_nats(&mut headers);
    let message = client
        .send_request(
            subject.to_owned(),
            async_nats::Request::new()
                .payload(Bytes::from(request.encode_to_vec()))
                .headers(headers)
                .timeout(Some(timeout)),
        )
        .await
        .map_err(|err| match err.kind() {
            async_nats::RequestErrorKind::TimedOut => RequestError::TimedOut(subject.to_owned()),
            _ => RequestError::NoResponders(subject.to_owned()),
        })?;
    Rep::decode(message.payload).map_err(|e| RequestError::BadReply {
        subject: subject.to_owned(),
        reason: e.to_string(),
    })
}

/// Creates the durable pull consumer described by `config` on the `EVENTS` stream, or updates
/// it to `config` if it exists. Every instance of a service runs this at start; they all share
/// the one consumer.
pub async fn durable_consumer(
    js: &jetstream::Context,
    config: jetstream::consumer::pull::Config,
) -> Result<jetstream::consumer::PullConsumer, async_nats::Error> {
    let stream = js.get_stream(subjects::EVENTS_STREAM).await?;
    let name = config.durable_name.clone().unwrap_or_default();
    match stream.create_consumer(config.clone()).await {
        Ok(consumer) => Ok(consumer),
        Err(create) => match stream.update_consumer(config).await {
            Ok(consumer) => Ok(consumer),
            Err(update) => Err(format!(
                "consumer {name}: create failed ({create}), update failed ({update})"
            )
            .into()),
        },
    }
}

/// How long a failed or ended subscription waits before it is opened again.
const RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);

/// Follows a subscription until shutdown, whatever happens to NATS in between: `open`
/// subscribes (a core subscription, a KV watch…), every item goes to `handle` in order, and when
/// opening fails or the stream ends it is opened again after a second. `what` names it in logs.
pub async fn follow<S, E, Open, Opening, Handle, Handling>(
    what: &str,
    shutdown: &CancellationToken,
    mut open: Open,
    mut handle: Handle,
) where
    Open: FnMut() -> Opening,
    Opening: Future<Output = Result<S, E>>,
    E: std::fmt::Display,
    S: Stream,
    Handle: FnMut(S::Item) -> Handling,
    Handling: Future<Output = ()>,
{
    loop {
        match open().await {
            Ok(stream) => {
                let mut stream = std::pin::pin!(stream);
                loop {
                    tokio::select! {
                        item = stream.next() => match item {
                            Some(item) => handle(item).await,
                            None => break,
                        },
                        () = shutdown.cancelled() => return,
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot follow {what}; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(RESUBSCRIBE_DELAY) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// [`follow`] for the messages of a core NATS `subject` (broadcasts every instance receives).
pub async fn follow_subject<Handle, Handling>(
    client: &Client,
    subject: &'static str,
    shutdown: &CancellationToken,
    handle: Handle,
) where
    Handle: FnMut(async_nats::Message) -> Handling,
    Handling: Future<Output = ()>,
{
    follow(subject, shutdown, || client.subscribe(subject), handle).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follow_reopens_a_failed_or_ended_stream_until_shutdown() {
        let shutdown = CancellationToken::new();
        let opened = std::cell::Cell::new(0);
        let seen = std::cell::RefCell::new(Vec::new());
        let started = tokio::time::Instant::now();
        let open = || {
            let attempt = opened.replace(opened.get() + 1);
            if attempt == 3 {
                shutdown.cancel();
            }
            async move {
                match attempt {
                    0 => Err("NATS is down"),
                    1 | 2 => Ok(futures::stream::iter(vec![attempt * 10, attempt * 10 + 1])),
                    _ => Ok(futures::stream::iter(Vec::new())),
                }
            }
        };
        follow("test", &shutdown, open, |item| {
            seen.borrow_mut().push(item);
            std::future::ready(())
        })
        .await;
        assert_eq!(*seen.borrow(), [10, 11, 20, 21], "every item, in order");
        assert_eq!(
            opened.get(),
            4,
            "opened again after a failure and after each end"
        );
        assert!(
            started.elapsed() >= RESUBSCRIBE_DELAY * 3,
            "a pause before each reopening"
        );
    }

    #[test]
    fn defaults_point_at_a_local_server() {
        let config = NatsConfig::from_source(&Source::default()).expect("defaults");
        assert_eq!(config.nats_url, "nats://127.0.0.1:4222");
    }

    #[test]
    fn a_url_that_is_not_nats_is_refused() {
        for bad in ["http://x:4222", "localhost:4222", "nats://"] {
            let source = Source::default().with("NATS_URL", bad);
            let err = NatsConfig::from_source(&source).expect_err(bad);
            assert!(
                matches!(&err, ConfigError::Invalid { var, .. } if var == "NATS_URL"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn the_stream_keeps_events_forever_by_default_and_refuses_rather_than_drops() {
        let config = StreamConfig::from_source(&Source::default()).expect("defaults");
        let stream = config.stream_config();
        assert_eq!(stream.subjects, vec!["events.>".to_owned()]);
        assert_eq!(stream.max_age, Duration::ZERO);
        assert_eq!(stream.discard, stream::DiscardPolicy::New);
        assert_eq!(stream.storage, stream::StorageType::File);
        assert_eq!(stream.duplicate_window, Duration::from_secs(120));
    }
}
