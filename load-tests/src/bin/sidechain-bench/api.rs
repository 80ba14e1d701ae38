//! The few edge API calls the bench makes to build what it measures (accounts, posts,
//! follows) and to check what it built (the timeline shows the posts), through the shared
//! API client. Set-up only: the measured load comes from `wrk` and `sidechain-load`.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::de::DeserializeOwned;
use sidechain_api_client::{ApiClient, Call, Feed, NewPost, Page, Registration};

/// Attempts of one set-up call.
const ATTEMPTS: u64 = 5;

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
    api: ApiClient,
}

impl Api {
    /// `base` is `http://127.0.0.1:<port>`.
    pub(crate) fn new(http: reqwest::Client, base: String) -> Self {
        Self {
            api: ApiClient::with_http(http, base),
        }
    }

    /// Fetches `call`; 5xx, 429 and transport failures are retried a few times (set-up must
    /// not fail on a service that is still warming up).
    async fn fetch<T: DeserializeOwned>(&self, call: Call<T>, what: &str) -> anyhow::Result<T> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let again = call
                .try_clone()
                .context("a set-up call that cannot be sent twice")?;
            match again.timeout(Duration::from_secs(10)).fetch().await {
                Ok(reply) => return Ok(reply),
                Err(err) if !err.is_retryable() => bail!("{what}: {err}"),
                Err(err) if attempt >= ATTEMPTS => bail!("{what} kept failing: {err}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(200 * attempt)).await,
            }
        }
    }

    /// Registers `username` (password `benchmark-password`).
    pub(crate) async fn register(&self, username: &str) -> anyhow::Result<Account> {
        let registration = Registration::new(username, "bench.invalid", "benchmark-password");
        let session = self
            .fetch(self.api.register(&registration), "register")
            .await?
            .auth;
        Ok(Account {
            id: session.user.id,
            token: session.token,
        })
    }

    /// Shares a post; answers its id.
    pub(crate) async fn create_post(&self, author: &Account, n: u32) -> anyhow::Result<String> {
        let post = NewPost {
            title: Some(format!("bench loop {n}")),
            audio_url: format!("https://cdn.example.com/bench/{n}.mp3"),
            waveform_url: None,
            bpm: f64::from(120 + (n % 40)),
            key: "A minor".to_owned(),
            genres: vec!["house".to_owned(), "techno".to_owned()],
            duration_seconds: 16.0,
            daw: None,
        };
        let call = self.api.create_post(&post).bearer(&author.token);
        Ok(self.fetch(call, "create a post").await?.id)
    }

    /// `follower` follows `target`.
    pub(crate) async fn follow(&self, follower: &Account, target: &Account) -> anyhow::Result<()> {
        let call = self.api.follow(&target.id).bearer(&follower.token);
        self.fetch(call, "follow").await.map(drop)
    }

    /// `user` likes `post`.
    pub(crate) async fn like(&self, user: &Account, post: &str) -> anyhow::Result<()> {
        let call = self.api.like(post, None).bearer(&user.token);
        self.fetch(call, "like").await.map(drop)
    }

    /// `GET /api/v1/auth/me`.
    pub(crate) async fn me(&self, user: &Account) -> anyhow::Result<()> {
        let call = self.api.me().bearer(&user.token);
        self.fetch(call, "auth/me").await.map(drop)
    }

    /// The post ids of `user`'s timeline page.
    pub(crate) async fn timeline(&self, user: &Account, limit: u32) -> anyhow::Result<Vec<String>> {
        let call = self
            .api
            .feed(Feed::Timeline, Some(Page::first(limit)))
            .bearer(&user.token);
        let page = self.fetch(call, "timeline").await?;
        Ok(page.activities.into_iter().map(|post| post.id).collect())
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
