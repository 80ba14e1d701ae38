//! End-to-end check of a Gorse deployment (`sidechain-gorse-smoke`): a post and a like written
//! through the API must be readable from Gorse itself, with Gorse v0.5.11's own read routes
//! (server/rest.go): `GET /api/item/{item-id}` (`getItem`), `GET /api/feedback/{user-id}/{item-id}`
//! (`getUserItemFeedback`) and `GET /api/feedback/{feedback-type}/{user-id}/{item-id}`
//! (`getTypedUserItemFeedback`). The post is then deleted through the API and must leave Gorse
//! (`DELETE /api/item/{id}` drops its feedback too).
//!
//! The typed read is made only once the untyped one lists the row: Gorse v0.5.11 indexes an
//! empty result there (`feedback[0]`) and the request dies without an answer.

use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use serde_json::Value;
use sidechain_api_client::{ApiClient, NewPost, Registration};

/// Where to check.
#[derive(Debug, Clone)]
pub struct SmokeConfig {
    /// The edge API, e.g. `http://127.0.0.1:8787`.
    pub base_url: String,
    /// Gorse's REST API, e.g. `http://127.0.0.1:8088`.
    pub gorse_url: String,
    /// `X-API-Key` for Gorse (its `GORSE_SERVER_API_KEY`), if it has one.
    pub gorse_api_key: Option<String>,
    /// How long each step may take to show up in Gorse (batches wait up to
    /// `GORSE_BATCH_TIMEOUT`, 5 s by default).
    pub timeout: Duration,
}

/// What was written and what Gorse answered.
#[derive(Debug, Clone)]
pub struct SmokeReport {
    /// The user created for the check.
    pub user_id: String,
    /// The post created, liked and deleted.
    pub post_id: String,
    /// Gorse's `GET /api/item/{post}` answer.
    pub item: Value,
    /// Gorse's `GET /api/feedback/like/{user}/{post}` answer.
    pub feedback: Value,
    /// Time from the like's 200 to the feedback being readable in Gorse.
    pub feedback_latency: Duration,
}

/// Gorse's REST API, as an operator's `curl` would call it.
struct Gorse {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl Gorse {
    /// (status, body as JSON or as a string).
    async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            request = request.header("X-API-Key", key);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, body))
    }

    /// Polls `path` until `done` holds of the answer; fails with the last answer.
    async fn wait_for(
        &self,
        what: &str,
        path: &str,
        timeout: Duration,
        done: impl Fn(u16, &Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.get(path).await;
            if let Ok((status, body)) = &last
                && done(*status, body)
            {
                return Ok(body.clone());
            }
            if Instant::now() >= deadline {
                let last = match last {
                    Ok((status, body)) => format!("{status} {body}"),
                    Err(err) => format!("{err:#}"),
                };
                bail!("{what}: not in Gorse after {timeout:?} (last answer to GET {path}: {last})");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Registers a user, shares a post, likes it, reads both back from Gorse, deletes the post and
/// sees its item leave Gorse.
pub async fn run(config: &SmokeConfig) -> anyhow::Result<SmokeReport> {
    let api = ApiClient::new(config.base_url.trim_end_matches('/'));
    let gorse = Gorse {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?,
        base: config.gorse_url.trim_end_matches('/').to_owned(),
        key: config.gorse_api_key.clone(),
    };
    let (status, body) = gorse.get("/api/health/ready").await?;
    if status != 200 {
        bail!("Gorse is not ready: {status} {body}");
    }

    let tag = &uuid::Uuid::new_v4().simple().to_string()[..10];
    let username = format!("gorse_smoke_{tag}");
    let session = api
        .register(&Registration::new(
            &username,
            "example.com",
            &format!("smoke-{}", uuid::Uuid::new_v4()),
        ))
        .fetch()
        .await
        .map_err(|err| anyhow!("registering {username}: {err}"))?
        .auth;
    let user_id = session.user.id.clone();
    let post = NewPost {
        title: Some("Gorse smoke check".to_owned()),
        audio_url: "https://cdn.example/gorse-smoke.wav".to_owned(),
        waveform_url: None,
        bpm: 124.0,
        key: "A minor".to_owned(),
        genres: vec!["Techno".to_owned()],
        duration_seconds: 8.0,
        daw: None,
    };
    let post_id = api
        .create_post(&post)
        .bearer(&session.token)
        .fetch()
        .await
        .map_err(|err| anyhow!("creating the post: {err}"))?
        .id;
    api.like(&post_id, None)
        .bearer(&session.token)
        .fetch()
        .await
        .map_err(|err| anyhow!("liking the post: {err}"))?;
    let liked_at = Instant::now();

    // The item as `post_created` maps it (docs/events.md): visible, genre + tempo + key.
    let item = gorse
        .wait_for(
            "the post's item",
            &format!("/api/item/{post_id}"),
            config.timeout,
            |status, item| {
                status == 200
                    && item["IsHidden"] == false
                    && item["Categories"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|c| c == "bpm_120"))
            },
        )
        .await?;
    gorse
        .wait_for(
            "the like",
            &format!("/api/feedback/{user_id}/{post_id}"),
            config.timeout,
            |status, rows| {
                status == 200
                    && rows
                        .as_array()
                        .is_some_and(|r| r.iter().any(|f| f["FeedbackType"] == "like"))
            },
        )
        .await?;
    let feedback_latency = liked_at.elapsed();
    let (status, feedback) = gorse
        .get(&format!("/api/feedback/like/{user_id}/{post_id}"))
        .await?;
    if status != 200
        || feedback["UserId"] != user_id.as_str()
        || feedback["ItemId"] != post_id.as_str()
    {
        bail!("GET /api/feedback/like/{user_id}/{post_id}: {status} {feedback}");
    }

    api.delete_post(&post_id)
        .bearer(&session.token)
        .fetch()
        .await
        .map_err(|err| anyhow!("deleting the post: {err}"))?;
    gorse
        .wait_for(
            "the post's deletion",
            &format!("/api/item/{post_id}"),
            config.timeout,
            |status, _| status == 404,
        )
        .await?;

    Ok(SmokeReport {
        user_id,
        post_id,
        item,
        feedback,
        feedback_latency,
    })
}
