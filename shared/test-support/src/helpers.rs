//! Small helpers every integration test needs: waiting for a condition, reading a metric,
//! sending an API call and keeping its JSON, and reading back the event stream.

use std::future::Future;
use std::time::Duration;

use serde_json::Value;

/// Waits until `condition` holds, checking every 25 ms; panics after `limit` naming `what`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The value of the first sample line of `text` (Prometheus exposition) starting with `prefix`.
pub fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// The sum of every sample line starting with `prefix` (e.g. a family across label sets).
pub fn metric_sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.rsplit(' ').next())
        .filter_map(|value| value.parse::<f64>().ok())
        .sum()
}

/// An API answer with its JSON body (`Null` when empty), for tests that check error bodies
/// and the exact JSON the clients see field by field.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: reqwest::StatusCode,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body.
    pub body: Value,
}

impl From<sidechain_api_client::Reply> for Reply {
    /// Panics if the body is not JSON: every answer of the API is.
    fn from(reply: sidechain_api_client::Reply) -> Self {
        let body = reply.json_value().unwrap_or_else(|_| {
            panic!(
                "non-JSON body {}: {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            )
        });
        Self {
            status: reply.status,
            headers: reply.headers,
            body,
        }
    }
}

/// Sends an API call (see `sidechain-api-client`) and keeps its JSON; panics when no answer
/// comes or the body is not JSON.
pub async fn send<T>(call: sidechain_api_client::Call<T>) -> Reply {
    call.send().await.expect("request sent").into()
}

/// Registers `username` (email `<username>@example.com`, password `correct horse battery`)
/// through `api`; panics unless it is created.
pub async fn register(
    api: &sidechain_api_client::ApiClient,
    username: &str,
) -> sidechain_api_client::Session {
    let registration =
        sidechain_api_client::Registration::new(username, "example.com", "correct horse battery");
    api.register(&registration)
        .fetch()
        .await
        .unwrap_or_else(|err| panic!("registering {username}: {err}"))
        .auth
}

/// Every message of the `EVENTS` stream as (subject, payload, `Nats-Msg-Id`), in order.
pub async fn stream_messages(
    nats: &crate::NatsServer,
) -> Vec<(String, bytes::Bytes, Option<String>)> {
    use futures::StreamExt as _;
    let client = nats.connect(crate::Identity::Admin).await;
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream("EVENTS").await.expect("stream");
    let count = stream.info().await.expect("info").state.messages;
    let mut out = Vec::new();
    if count == 0 {
        return out;
    }
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await
        .expect("ordered consumer");
    let mut messages = consumer.messages().await.expect("messages");
    while (out.len() as u64) < count {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .expect("message in time")
            .expect("stream open")
            .expect("message");
        let id = message
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.as_str().to_owned());
        out.push((message.subject.to_string(), message.payload.clone(), id));
    }
    out
}
