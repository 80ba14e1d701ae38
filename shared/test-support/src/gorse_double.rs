//! **Gorse test double** — not Gorse. An HTTP server implementing the Gorse v0.5 REST endpoints
//! this project uses, with Gorse's status codes and body formats: JSON bodies with Gorse's
//! field names, `{"RowAffected": n}` for writes, plain-text errors, `X-API-Key` checked except on
//! `/api/health/*` (401 `unauthorized`, as Gorse's `AuthFilter`), `/api/health/live` always 200,
//! `/api/health/ready` 200 or 503 with the same status JSON, ids never checked for emptiness (a
//! missing id is `""`, as Go decodes it), paths no route matches answered `404: Page Not Found`
//! and non-canonical ones (`//`) redirected, feedback readable by user and item. Gorse itself
//! cannot run on the development machines; the real image runs in `compose/`.
//!
//! It records everything it received, and can be told to fail the next N API requests with a
//! status (health checks excepted), to report itself not ready (503 on `/api/health/ready`),
//! to answer slowly, or to go away (connection refused) and come back on the same port.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// One request as received.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The `traceparent` header, if any.
    pub traceparent: Option<String>,
}

/// What the double holds and has seen.
#[derive(Debug, Clone, Default)]
pub struct GorseRecord {
    /// Current feedback by (type, user, item) → the stored JSON object.
    pub feedback: BTreeMap<(String, String, String), Value>,
    /// Every feedback row received by PUT or POST, in order (duplicates included).
    pub feedback_received: Vec<Value>,
    /// Every feedback DELETE, as (type, user, item).
    pub feedback_deleted: Vec<(String, String, String)>,
    /// Current items by id.
    pub items: BTreeMap<String, Value>,
    /// Deleted item ids, in order.
    pub items_deleted: Vec<String>,
    /// Current users by id.
    pub users: BTreeMap<String, Value>,
    /// Every request that reached a handler (failed injections included), in order.
    pub requests: Vec<ReceivedRequest>,
}

impl GorseRecord {
    /// Feedback write requests (`PUT`/`POST /api/feedback`) received.
    pub fn feedback_batches(&self) -> usize {
        self.requests
            .iter()
            .filter(|r| r.path == "/api/feedback" && r.method != "GET")
            .count()
    }
}

#[derive(Debug)]
struct Control {
    failures: VecDeque<u16>,
    /// Gorse `[server] auto_insert_user` / `auto_insert_item` (config/config.go, both `true` by
    /// default).
    auto_insert_user: bool,
    auto_insert_item: bool,
    not_ready: bool,
    latency: Duration,
    api_key: Option<String>,
    recommendations: BTreeMap<String, Vec<String>>,
}

impl Default for Control {
    fn default() -> Self {
        // config/config.go (v0.5.11) `GetDefaultConfig`: `AutoInsertUser: true, AutoInsertItem: true`.
        Self {
            failures: VecDeque::new(),
            auto_insert_user: true,
            auto_insert_item: true,
            not_ready: false,
            latency: Duration::ZERO,
            api_key: None,
            recommendations: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    record: Mutex<GorseRecord>,
    control: Mutex<Control>,
    /// Where accepted writes are appended (the standalone double survives SIGKILL with it).
    journal: Option<std::path::PathBuf>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The running double.
#[derive(Debug)]
pub struct GorseDouble {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl GorseDouble {
    /// Starts on a free port, accepting any API key.
    pub async fn start() -> Self {
        Self::start_inner(None).await
    }

    /// Starts on a free port, requiring `X-API-Key: key`.
    pub async fn start_with_api_key(key: &str) -> Self {
        Self::start_inner(Some(key.to_owned())).await
    }

    async fn start_inner(api_key: Option<String>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Gorse double");
        Self::serve_on(listener, api_key, None).await
    }

    /// Serves on `listener`. With a `journal`, every accepted write is appended to it and the
    /// writes already there are replayed first, so a double killed and started again with the
    /// same journal has the same state (the standalone `sidechain-gorse-double`).
    pub async fn serve_on(
        listener: tokio::net::TcpListener,
        api_key: Option<String>,
        journal: Option<std::path::PathBuf>,
    ) -> Self {
        let shared = Arc::new(Shared {
            journal: journal.clone(),
            ..Shared::default()
        });
        if let Some(path) = &journal {
            replay(&shared, path).await;
        }
        lock(&shared.control).api_key = api_key;
        let addr = listener.local_addr().expect("addr");
        let double = Self {
            addr,
            shared,
            server: Mutex::new(None),
        };
        double.serve(listener);
        double
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let app = router(self.shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        *lock(&self.server) = Some(task);
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next `n` API requests (not health checks nor the `/api/latest` key probe) answer `status` with a plain-text error.
    pub fn fail_next(&self, n: usize, status: u16) {
        lock(&self.shared.control)
            .failures
            .extend(std::iter::repeat_n(status, n));
    }

    /// Changes the API key Gorse expects (`None`: no key, as Gorse without `api_key`).
    pub fn set_api_key(&self, key: Option<&str>) {
        lock(&self.shared.control).api_key = key.map(str::to_owned);
    }

    /// Gorse's `[server] auto_insert_user` and `auto_insert_item`: with `false`, feedback on a
    /// user or item the double does not have is dropped while the reply still counts it, as
    /// Gorse does (storage/data/sql.go `BatchInsertFeedback`).
    pub fn set_auto_insert(&self, users: bool, items: bool) {
        let mut control = lock(&self.shared.control);
        control.auto_insert_user = users;
        control.auto_insert_item = items;
    }

    /// Makes `/api/health/ready` answer 503 (or 200 again).
    pub fn set_ready(&self, ready: bool) {
        lock(&self.shared.control).not_ready = !ready;
    }

    /// Every request waits this long before being answered.
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.shared.control).latency = latency;
    }

    /// What `GET /api/recommend/{user}` returns for this user.
    pub fn set_recommendations(&self, user: &str, items: Vec<String>) {
        lock(&self.shared.control)
            .recommendations
            .insert(user.to_owned(), items);
    }

    /// Stops listening: new connections are refused, open ones dropped. State is kept.
    pub fn go_away(&self) {
        if let Some(task) = lock(&self.server).take() {
            task.abort();
        }
    }

    /// Listens again on the same port after [`Self::go_away`].
    pub async fn come_back(&self) {
        let mut attempts = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(_) if attempts < 100 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(err) => panic!("the Gorse double cannot rebind {}: {err}", self.addr),
            }
        };
        self.serve(listener);
    }

    /// A snapshot of what was received.
    pub fn record(&self) -> GorseRecord {
        lock(&self.shared.record).clone()
    }
}

impl Drop for GorseDouble {
    fn drop(&mut self) {
        self.go_away();
    }
}

/// A write as journaled: enough to send it through the router again.
#[derive(serde::Serialize, serde::Deserialize)]
struct JournalEntry {
    method: String,
    path: String,
    body: String,
}

async fn replay(shared: &Arc<Shared>, path: &std::path::Path) {
    use tower::ServiceExt as _;
    let Ok(text) = tokio::fs::read_to_string(path).await else {
        return;
    };
    // Replay through the API routes without journaling again or applying failures.
    let app = api_routes().with_state(shared.clone());
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(entry) = serde_json::from_str::<JournalEntry>(line) else {
            continue;
        };
        let request = axum::http::Request::builder()
            .method(entry.method.as_str())
            .uri(entry.path.as_str())
            .header("content-type", "application/json")
            .body(axum::body::Body::from(entry.body));
        if let Ok(request) = request {
            let _ = app.clone().oneshot(request).await;
        }
    }
}

/// Appends accepted writes to the journal.
async fn journal(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let Some(path) = shared.journal.clone() else {
        return next.run(request).await;
    };
    if request.method() == axum::http::Method::GET {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024 * 1024).await else {
        return text(StatusCode::BAD_REQUEST, "unreadable body");
    };
    let entry = JournalEntry {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    };
    let response = next
        .run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await;
    if response.status().is_success()
        && let Ok(line) = serde_json::to_string(&entry)
    {
        use tokio::io::AsyncWriteExt as _;
        if let Ok(mut file) = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
        {
            let _ = file.write_all(format!("{line}\n").as_bytes()).await;
        }
    }
    response
}

/// What the standalone double reports on `GET /__double/record`.
async fn record_summary(State(shared): State<Arc<Shared>>) -> Response {
    let record = lock(&shared.record);
    let feedback: Vec<Value> = record
        .feedback
        .iter()
        .map(|((kind, user, item), row)| json!({"type": kind, "user": user, "item": item, "value": row.get("Value")}))
        .collect();
    axum::Json(json!({
        "feedback": feedback,
        "feedback_received": record.feedback_received.len(),
        "feedback_batches": record.feedback_batches(),
        "items": record.items.len(),
        "users": record.users.len(),
        "requests": record.requests.len(),
    }))
    .into_response()
}

/// `POST /__double/control?latency_ms=&fail=&status=&ready=&auto_insert_user=&auto_insert_item=`:
/// change behaviour at run time.
async fn control(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let mut control = lock(&shared.control);
    if let Some(ms) = query.get("latency_ms").and_then(|v| v.parse().ok()) {
        control.latency = Duration::from_millis(ms);
    }
    if let Some(n) = query.get("fail").and_then(|v| v.parse::<usize>().ok()) {
        let status = query
            .get("status")
            .and_then(|v| v.parse().ok())
            .unwrap_or(503);
        control.failures.extend(std::iter::repeat_n(status, n));
    }
    if let Some(ready) = query.get("ready").and_then(|v| v.parse::<bool>().ok()) {
        control.not_ready = !ready;
    }
    if let Some(on) = query
        .get("auto_insert_user")
        .and_then(|v| v.parse::<bool>().ok())
    {
        control.auto_insert_user = on;
    }
    if let Some(on) = query
        .get("auto_insert_item")
        .and_then(|v| v.parse::<bool>().ok())
    {
        control.auto_insert_item = on;
    }
    axum::Json(json!({"latency_ms": control.latency.as_millis() as u64, "pending_failures": control.failures.len(), "ready": !control.not_ready,
        "auto_insert_user": control.auto_insert_user, "auto_insert_item": control.auto_insert_item}))
        .into_response()
}

fn router(shared: Arc<Shared>) -> Router {
    let double_control = Router::new()
        .route("/__double/record", get(record_summary))
        .route("/__double/control", post(control))
        .with_state(shared.clone());
    api_routes()
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            gatekeeper,
        ))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            journal,
        ))
        .with_state(shared)
        .merge(double_control)
        // go-restful (curly.go `SelectRoute`) answers a path no route matches — among them an
        // empty last id such as `/api/item/`, whose trailing `/` route.go `tokenizePath` trims
        // — with 404 and this text, before any filter (so before the API key check). Read in
        // go-restful v3.12.0; Gorse v0.5.11 pins v3.13.0, and the router last changed in v3.11.0.
        .fallback(|| async { text(StatusCode::NOT_FOUND, "404: Page Not Found") })
        .layer(axum::middleware::from_fn(go_serve_mux))
}

/// Go's `net/http.ServeMux`, which go-restful's `Container.ServeHTTP` goes through (Gorse's
/// server/rest.go `StartHttpServer` serves the container): a path that is not canonical — an
/// empty segment such as `/api/feedback/like//p1` (an empty user id), `.` or `..` — is
/// answered `301 Moved Permanently` to the cleaned path, never routed.
async fn go_serve_mux(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let canonical = segments
        .iter()
        .enumerate()
        .all(|(i, s)| (!s.is_empty() || i == last) && *s != "." && *s != "..");
    if canonical {
        return next.run(request).await;
    }
    let mut cleaned: Vec<&str> = Vec::new();
    for segment in &segments {
        match *segment {
            "" | "." => {}
            ".." => {
                cleaned.pop();
            }
            other => cleaned.push(other),
        }
    }
    let mut location = format!("/{}", cleaned.join("/"));
    if path.ends_with('/') && location != "/" {
        location.push('/');
    }
    if let Some(query) = request.uri().query() {
        location = format!("{location}?{query}");
    }
    (
        StatusCode::MOVED_PERMANENTLY,
        [("location", location.as_str())],
    )
        .into_response()
}

/// Gorse's endpoints.
fn api_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/feedback", post(insert_feedback).put(put_feedback))
        .route(
            "/api/feedback/{feedback_type}/{user}/{item}",
            get(get_typed_feedback).delete(delete_feedback),
        )
        .route("/api/feedback/{user}/{item}", get(get_user_item_feedback))
        .route("/api/items", post(insert_items))
        .route("/api/item/{id}", get(get_item).delete(delete_item))
        .route("/api/users", post(insert_users))
        .route("/api/recommend/{user}", get(recommend))
        .route("/api/latest", get(latest))
        .route("/api/non-personalized/{name}", get(latest))
        .route("/api/health/live", get(health_live))
        .route("/api/health/ready", get(health_ready))
}

fn text(status: StatusCode, body: &str) -> Response {
    (
        status,
        [("content-type", "text/plain; charset=utf-8")],
        body.to_owned(),
    )
        .into_response()
}

/// Records the request, applies latency, injected failures and the API key check.
async fn gatekeeper(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    lock(&shared.record).requests.push(ReceivedRequest {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        traceparent: request
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    });
    let is_health = request.uri().path().starts_with("/api/health/");
    // The feedback service's key probe (`GET /api/latest?n=1`) runs on a timer; injected
    // failures are meant for the calls a test makes, so the probe never consumes them.
    let is_key_probe = request.uri().path() == "/api/latest";
    let (latency, failure, key) = {
        let mut control = lock(&shared.control);
        let failure = if is_health || is_key_probe {
            None
        } else {
            control.failures.pop_front()
        };
        (control.latency, failure, control.api_key.clone())
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(status) = failure {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = text(status, "injected failure");
        if status == StatusCode::TOO_MANY_REQUESTS {
            // What a rate-limiting proxy in front of Gorse would say.
            response
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        }
        return response;
    }
    // server/rest.go `AuthFilter`: health routes skip the key; the rest answer 401 with
    // `resp.WriteError(401, "unauthorized")`, a plain-text body.
    if !is_health
        && let Some(key) = key
        && request
            .headers()
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            != Some(key.as_str())
    {
        return text(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    next.run(request).await
}

/// The JSON array of a write, or Gorse's 400 text.
fn parse_array(body: &Bytes) -> Result<Vec<Value>, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(rows)) => Ok(rows),
        Ok(_) => Err("json: cannot unmarshal object into Go value of type []".to_owned()),
        Err(err) => Err(err.to_string()),
    }
}

/// A string field of a row as Go's `encoding/json` reads it into a `string`: absent or `null`
/// is `""`, another type an `UnmarshalTypeError` (its text, approximately) (Gorse checks no id for emptiness: server/rest.go `insertFeedback`, `insertItems`,
/// `insertUsers` go straight to the data store), anything but a string is a 400.
fn go_string(row: &Value, type_name: &str, field: &str) -> Result<String, String> {
    match row.get(field) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => {
            let kind = match other {
                Value::Bool(_) => "bool",
                Value::Number(_) => "number",
                Value::Array(_) => "array",
                _ => "object",
            };
            Err(format!(
                "json: cannot unmarshal {kind} into Go struct field {type_name}.{field} of type string"
            ))
        }
    }
}

fn feedback_key(row: &Value) -> Result<(String, String, String), String> {
    Ok((
        go_string(row, "Feedback", "FeedbackType")?,
        go_string(row, "Feedback", "UserId")?,
        go_string(row, "Feedback", "ItemId")?,
    ))
}

fn row_affected(n: usize) -> Response {
    axum::Json(json!({ "RowAffected": n })).into_response()
}

fn write_feedback(shared: &Shared, body: &Bytes, add_up: bool) -> Response {
    let rows = match parse_array(body) {
        Ok(rows) => rows,
        Err(why) => return text(StatusCode::BAD_REQUEST, &why),
    };
    let keys: Result<Vec<_>, _> = rows.iter().map(feedback_key).collect();
    let keys = match keys {
        Ok(keys) => keys,
        Err(why) => return text(StatusCode::BAD_REQUEST, &why),
    };
    let count = rows.len();
    let (insert_user, insert_item) = {
        let control = lock(&shared.control);
        (control.auto_insert_user, control.auto_insert_item)
    };
    let mut record = lock(&shared.record);
    for (key, mut row) in keys.into_iter().zip(rows) {
        record.feedback_received.push(row.clone());
        row["FeedbackType"] = json!(key.0);
        row["UserId"] = json!(key.1);
        row["ItemId"] = json!(key.2);
        let (_, user, item) = &key;
        // storage/data/sql.go (v0.5.11) `BatchInsertFeedback`, lines 1542-1655: with
        // `insertUser`/`insertItem` the missing rows are created (`ON CONFLICT DO NOTHING`, no
        // labels or categories, not hidden); without, feedback on a user or item the data
        // store lacks is skipped (`users.Contains(f.UserId) && items.Contains(f.ItemId)`),
        // while server/rest.go `insertFeedback` still answers `RowAffected: len(feedback)`.
        if !record.users.contains_key(user) {
            if !insert_user {
                continue;
            }
            record
                .users
                .insert(user.clone(), json!({"UserId": user, "Labels": null}));
        }
        if !record.items.contains_key(item) {
            if !insert_item {
                continue;
            }
            record.items.insert(
                item.clone(),
                json!({"ItemId": item, "IsHidden": false, "Categories": null, "Labels": null}),
            );
        }
        let stored = match (add_up, record.feedback.get(&key)) {
            // POST inserts, adding values up for an existing row (why retries must use PUT).
            (true, Some(existing)) => {
                let sum = existing.get("Value").and_then(Value::as_f64).unwrap_or(0.0)
                    + row.get("Value").and_then(Value::as_f64).unwrap_or(0.0);
                let mut merged = row.clone();
                merged["Value"] = json!(sum);
                merged
            }
            _ => row,
        };
        record.feedback.insert(key, stored);
    }
    row_affected(count)
}

async fn put_feedback(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    write_feedback(&shared, &body, false)
}

async fn insert_feedback(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    write_feedback(&shared, &body, true)
}

/// Gorse's `data.Feedback` as its GET routes answer it (`Updated` = `Timestamp` on write:
/// storage/data/sql.go `BatchInsertFeedback`).
fn feedback_json(row: &Value) -> Value {
    json!({
        "FeedbackType": row.get("FeedbackType").cloned().unwrap_or(json!("")),
        "UserId": row.get("UserId").cloned().unwrap_or(json!("")),
        "ItemId": row.get("ItemId").cloned().unwrap_or(json!("")),
        "Value": row.get("Value").cloned().unwrap_or(json!(0.0)),
        "Timestamp": row.get("Timestamp").cloned().unwrap_or(json!("")),
        "Updated": row.get("Timestamp").cloned().unwrap_or(json!("")),
        "Comment": row.get("Comment").cloned().unwrap_or(json!("")),
    })
}

/// server/rest.go `getUserItemFeedback`: every type of feedback `user` gave `item`, `[]` if none.
async fn get_user_item_feedback(
    State(shared): State<Arc<Shared>>,
    Path((user, item)): Path<(String, String)>,
) -> Response {
    let record = lock(&shared.record);
    let rows: Vec<Value> = record
        .feedback
        .iter()
        .filter(|((_, u, i), _)| u == &user && i == &item)
        .map(|(_, row)| feedback_json(row))
        .collect();
    axum::Json(rows).into_response()
}

/// server/rest.go `getTypedUserItemFeedback`: the row. When there is none, Gorse indexes an
/// empty slice (`feedback[0]`) and panics; go-restful does not recover by default
/// (container.go `doNotRecover: true`), so net/http closes the connection without an answer.
/// The double answers 500 with the panic text instead: a client must not read a missing row.
async fn get_typed_feedback(
    State(shared): State<Arc<Shared>>,
    Path((feedback_type, user, item)): Path<(String, String, String)>,
) -> Response {
    match lock(&shared.record)
        .feedback
        .get(&(feedback_type, user, item))
    {
        Some(row) => axum::Json(feedback_json(row)).into_response(),
        None => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "runtime error: index out of range [0] with length 0",
        ),
    }
}

async fn delete_feedback(
    State(shared): State<Arc<Shared>>,
    Path((feedback_type, user, item)): Path<(String, String, String)>,
) -> Response {
    let mut record = lock(&shared.record);
    let key = (feedback_type, user, item);
    record.feedback_deleted.push(key.clone());
    let removed = record.feedback.remove(&key).is_some();
    row_affected(usize::from(removed))
}

/// Gorse v0.5.11 storage/data/database.go `ValidateLabels`: null, strings, numbers, arrays of
/// only strings or only numbers, objects of valid labels.
///
/// Deliberately not `sidechain_gorse::validate_labels`: the double plays the server and must
/// not share code with the client it checks, or a client bug would be mirrored here unseen.
fn validate_labels(labels: &Value) -> Result<(), String> {
    match labels {
        Value::Null | Value::String(_) | Value::Number(_) => Ok(()),
        Value::Array(values) => match values.first() {
            None => Ok(()),
            Some(Value::String(_)) if values.iter().all(Value::is_string) => Ok(()),
            Some(Value::Number(_)) if values.iter().all(Value::is_number) => Ok(()),
            Some(_) => Err(format!("unsupported labels: {labels}")),
        },
        Value::Object(map) => map.values().try_for_each(validate_labels),
        Value::Bool(_) => Err("unsupported type in labels: bool".to_owned()),
    }
}

/// server/rest.go `insertItems`/`insertUsers`: one row with invalid labels fails the whole
/// request with 400, before anything is stored.
fn parse_labelled_rows(body: &Bytes) -> Result<Vec<Value>, String> {
    let rows = parse_array(body)?;
    for row in &rows {
        if let Some(labels) = row.get("Labels") {
            validate_labels(labels)?;
        }
    }
    Ok(rows)
}

async fn insert_items(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let rows = match parse_labelled_rows(&body) {
        Ok(rows) => rows,
        Err(why) => return text(StatusCode::BAD_REQUEST, &why),
    };
    let ids: Result<Vec<String>, String> = rows
        .iter()
        .map(|row| go_string(row, "Item", "ItemId"))
        .collect();
    let ids = match ids {
        Ok(ids) => ids,
        Err(why) => return text(StatusCode::BAD_REQUEST, &why),
    };
    let mut record = lock(&shared.record);
    let count = rows.len();
    for (id, mut row) in ids.into_iter().zip(rows) {
        // An empty id is stored like any other (storage/data/sql.go `BatchInsertItems`).
        row["ItemId"] = json!(id);
        record.items.insert(id, row);
    }
    row_affected(count)
}

/// server/rest.go `getItem`: the item, or 404 (`PageNotFound`) with the error as plain text.
async fn get_item(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    match lock(&shared.record).items.get(&id) {
        Some(item) => axum::Json(item.clone()).into_response(),
        None => text(StatusCode::NOT_FOUND, &format!("{id}: item not found")),
    }
}

async fn delete_item(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let mut record = lock(&shared.record);
    record.items_deleted.push(id.clone());
    record.items.remove(&id);
    record.feedback.retain(|(_, _, item), _| item != &id);
    // server/rest.go (v0.5.11) `deleteItem`: `Ok(response, Success{RowAffected: 1})` whether
    // or not the item existed.
    row_affected(1)
}

async fn insert_users(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let rows = match parse_labelled_rows(&body) {
        Ok(rows) => rows,
        Err(why) => return text(StatusCode::BAD_REQUEST, &why),
    };
    let ids: Result<Vec<String>, String> = rows
        .iter()
        .map(|row| go_string(row, "User", "UserId"))
        .collect();
    let ids = match ids {
        Ok(ids) => ids,
        Err(why) => return text(StatusCode::BAD_REQUEST, &why),
    };
    let mut record = lock(&shared.record);
    let count = rows.len();
    for (id, mut row) in ids.into_iter().zip(rows) {
        // An empty id is stored like any other (storage/data/sql.go `BatchInsertUsers`).
        row["UserId"] = json!(id);
        record.users.insert(id, row);
    }
    row_affected(count)
}

/// server/rest.go (v0.5.11) `ParseInt`: a missing parameter takes the default (`n`: config
/// `default_n`, 10), one that is not an integer is a 400; `n=0` asks for nothing.
fn page_params(query: &BTreeMap<String, String>) -> Result<(usize, usize), String> {
    let parse = |name: &str, fallback: usize| match query.get(name).map(String::as_str) {
        None | Some("") => Ok(fallback),
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| format!("strconv.Atoi: parsing \"{v}\": invalid syntax")),
    };
    Ok((parse("n", 10)?, parse("offset", 0)?))
}

/// Visible items, newest first (by Timestamp, then id).
fn latest_items(shared: &Shared) -> Vec<String> {
    let record = lock(&shared.record);
    let mut items: Vec<(&str, &str)> = record
        .items
        .iter()
        .filter(|(_, v)| !v.get("IsHidden").and_then(Value::as_bool).unwrap_or(false))
        .map(|(id, v)| {
            (
                v.get("Timestamp").and_then(Value::as_str).unwrap_or(""),
                id.as_str(),
            )
        })
        .collect();
    items.sort_by(|a, b| b.cmp(a));
    items.into_iter().map(|(_, id)| id.to_owned()).collect()
}

async fn recommend(
    State(shared): State<Arc<Shared>>,
    Path(user): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let (n, offset) = match page_params(&query) {
        Ok(page) => page,
        Err(why) => return text(StatusCode::BAD_REQUEST, &why),
    };
    let configured = lock(&shared.control).recommendations.get(&user).cloned();
    let items = configured.unwrap_or_else(|| latest_items(&shared));
    let record = lock(&shared.record);
    // logics/recommend.go: items the user already has feedback on are left out; `?category=`
    // (server/rest.go `ReadCategories`) keeps items in that category.
    let category = query.get("category").filter(|c| !c.is_empty());
    let page: Vec<String> = items
        .into_iter()
        .filter(|item| {
            !record
                .feedback
                .keys()
                .any(|(_, u, i)| u == &user && i == item)
        })
        .filter(|item| {
            category.is_none_or(|c| {
                record
                    .items
                    .get(item)
                    .and_then(|v| v.get("Categories"))
                    .and_then(Value::as_array)
                    .is_some_and(|cs| cs.iter().any(|x| x.as_str() == Some(c.as_str())))
            })
        })
        .skip(offset)
        .take(n)
        .collect();
    axum::Json(page).into_response()
}

async fn latest(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let (n, offset) = match page_params(&query) {
        Ok(page) => page,
        Err(why) => return text(StatusCode::BAD_REQUEST, &why),
    };
    let scored: Vec<Value> = latest_items(&shared)
        .into_iter()
        .skip(offset)
        .take(n)
        .enumerate()
        .map(|(i, id)| json!({"Id": id, "Score": -(i as f64)}))
        .collect();
    axum::Json(scored).into_response()
}

/// server/rest.go (v0.5.11) `checkHealth`: the status of the data and cache stores.
fn health_status(shared: &Shared) -> (bool, Value) {
    let ready = !lock(&shared.control).not_ready;
    let error = (!ready).then_some("injected: not ready");
    let status = json!({
        "CacheStoreConnected": ready, "CacheStoreError": error,
        "DataStoreConnected": ready, "DataStoreError": null,
        "Ready": ready
    });
    (ready, status)
}

/// server/rest.go `checkLive`: always 200 with the health status.
async fn health_live(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(health_status(&shared).1).into_response()
}

/// server/rest.go `checkReady`: 200 with the status, or 503 with the same JSON as the error
/// text (`Error(response, 503, errors.New(string(errReason)))`).
async fn health_ready(State(shared): State<Arc<Shared>>) -> Response {
    match health_status(&shared) {
        (true, status) => axum::Json(status).into_response(),
        (false, status) => text(StatusCode::SERVICE_UNAVAILABLE, &status.to_string()),
    }
}
