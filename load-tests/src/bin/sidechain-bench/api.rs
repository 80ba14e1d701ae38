//! The few edge API calls the bench makes to build what it measures (accounts, posts,
//! follows) and to check what it built (the timeline shows the posts). Set-up only: the
//! measured load comes from `wrk` and `sidechain-load`.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A registered user.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    /// User id.
    pub(crate) id: String,
    /// Bearer token.
    pub(crate) token: String,
}

/// The edge API at one base URL.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    /// `base` is `http://127.0.0.1:<port>`.
    pub(crate) fn new(http: reqwest::Client, base: String) -> Self {
        Self { http, base }
    }

    /// One call; 5xx and transport failures are retried a few times (set-up must not fail
    /// on a service that is still warming up). Answers the JSON body of a 2xx.
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .timeout(Duration::from_secs(10));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = &body {
                request = request.json(body);
            }
            let outcome = request.send().await;
            let retryable = match outcome {
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    if status.is_success() {
                        return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
                    }
                    if !status.is_server_error() && status != StatusCode::TOO_MANY_REQUESTS {
                        bail!("{method} {path} answered {status}: {text}");
                    }
                    format!("{status}: {text}")
                }
                Err(err) => err.to_string(),
            };
            if attempt >= 5 {
                bail!("{method} {path} kept failing: {retryable}");
            }
            tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
        }
    }

    /// Registers `username` (password `benchmark-password`).
    pub(crate) async fn register(&self, username: &str) -> anyhow::Result<Account> {
        let body = json!({
            "email": format!("{username}@bench.invalid"),
            "username": username,
            "password": "benchmark-password",
        });
        let reply = self
            .call(Method::POST, "/api/v1/auth/register", None, Some(body))
            .await?;
        let auth = &reply["auth"];
        Ok(Account {
            id: auth["user"]["id"]
                .as_str()
                .context("registration without user id")?
                .to_owned(),
            token: auth["token"]
                .as_str()
                .context("registration without token")?
                .to_owned(),
        })
    }

    /// Shares a post; answers its id.
    pub(crate) async fn create_post(&self, author: &Account, n: u32) -> anyhow::Result<String> {
        let body = json!({
            "title": format!("bench loop {n}"),
            "audio_url": format!("https://cdn.example.com/bench/{n}.mp3"),
            "bpm": 120 + (n % 40),
            "key": "A minor",
            "genres": ["house", "techno"],
            "duration_seconds": 16.0,
        });
        let reply = self
            .call(
                Method::POST,
                "/api/v1/feed/post",
                Some(&author.token),
                Some(body),
            )
            .await?;
        Ok(reply["id"].as_str().context("post without id")?.to_owned())
    }

    /// `follower` follows `target`.
    pub(crate) async fn follow(&self, follower: &Account, target: &Account) -> anyhow::Result<()> {
        self.call(
            Method::POST,
            &format!("/api/v1/users/{}/follow", target.id),
            Some(&follower.token),
            None,
        )
        .await
        .map(drop)
    }

    /// `user` likes `post`.
    pub(crate) async fn like(&self, user: &Account, post: &str) -> anyhow::Result<()> {
        self.call(
            Method::POST,
            "/api/v1/social/like",
            Some(&user.token),
            Some(json!({ "activity_id": post })),
        )
        .await
        .map(drop)
    }

    /// `GET /api/v1/auth/me`.
    pub(crate) async fn me(&self, user: &Account) -> anyhow::Result<()> {
        self.call(Method::GET, "/api/v1/auth/me", Some(&user.token), None)
            .await
            .map(drop)
    }

    /// The post ids of `user`'s timeline page.
    pub(crate) async fn timeline(&self, user: &Account, limit: u32) -> anyhow::Result<Vec<String>> {
        let reply = self
            .call(
                Method::GET,
                &format!("/api/v1/feed/timeline?limit={limit}&offset=0"),
                Some(&user.token),
                None,
            )
            .await?;
        Ok(reply["activities"]
            .as_array()
            .context("timeline without activities")?
            .iter()
            .filter_map(|a| a["id"].as_str().map(str::to_owned))
            .collect())
    }

    /// Waits until `user`'s timeline page holds `post` (the read models are eventually
    /// consistent), checking every `every`; answers how long it took.
    pub(crate) async fn wait_for_post(
        &self,
        user: &Account,
        limit: u32,
        post: &str,
        every: Duration,
        limit_time: Duration,
    ) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            if self
                .timeline(user, limit)
                .await?
                .iter()
                .any(|id| id == post)
            {
                return Ok(start.elapsed());
            }
            if start.elapsed() > limit_time {
                bail!("post {post} not in the timeline after {limit_time:?}");
            }
            tokio::time::sleep(every).await;
        }
    }
}
