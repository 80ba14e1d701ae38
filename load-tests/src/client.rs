//! The calls this tool makes, as the scenarios name them, sent through the shared API client
//! (`sidechain-api-client`). A call answers an [`Outcome`]: the reply of any status with its
//! body read to the end (so measured latency includes the whole response), or a transport
//! failure sorted into `connect`, `timeout` or `transport`. Latency and error counting stay
//! with the caller (`load`).

use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;
pub use sidechain_api_client::{
    ApiClient, AuthEnvelope, Feed, Login, NewPost, Outcome, Page, Play, Registration, Reply,
    error_label,
};

/// One API call, borrowing the ids it acts on.
#[derive(Debug, Clone)]
pub enum Call<'a> {
    /// `GET /health`.
    Health,
    /// `POST /api/v1/auth/register`.
    Register(&'a Registration),
    /// `POST /api/v1/auth/login` by username.
    Login {
        /// Username.
        username: &'a str,
        /// Password.
        password: &'a str,
    },
    /// `GET /api/v1/auth/me`.
    Me,
    /// `GET /api/v1/feed/{timeline,unified,trending}`.
    Feed(Feed, Page),
    /// `GET /api/v1/users/{id}/posts`.
    UserPosts(&'a str, Page),
    /// `POST /api/v1/social/like`.
    Like(&'a str),
    /// `POST /api/v1/posts/{id}/play`.
    Play {
        /// The post.
        post: &'a str,
        /// Seconds listened.
        duration: f64,
        /// Played to the end.
        completed: bool,
    },
    /// `POST /api/v1/users/{id}/follow`.
    Follow(&'a str),
    /// `POST /api/v1/posts/{id}/comments`.
    Comment {
        /// The post.
        post: &'a str,
        /// Text.
        content: &'a str,
    },
    /// `POST /api/v1/feed/post`.
    CreatePost(&'a NewPost),
}

/// The ids a write answer may carry: `event_id` (interactions) or `id` (a created post or
/// comment). Unknown fields are ignored.
#[derive(Debug, Default, Deserialize)]
pub struct WriteAck {
    /// Id of the stored event.
    pub event_id: Option<String>,
    /// Id of the created post or comment.
    pub id: Option<String>,
}

/// A client keeping up to `connections` idle connections, giving up on a request after
/// `timeout`.
pub fn connect(base: &Url, timeout: Duration, connections: usize) -> anyhow::Result<ApiClient> {
    let http = reqwest::Client::builder()
        .user_agent(concat!("sidechain-load/", env!("CARGO_PKG_VERSION")))
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(3)))
        .pool_max_idle_per_host(connections)
        .tcp_nodelay(true)
        .no_proxy()
        .build()?;
    Ok(ApiClient::with_http(http, base.as_str()))
}

/// Sends `call` as the holder of `token`, with an `Idempotency-Key` when given.
pub async fn send(
    api: &ApiClient,
    token: Option<&str>,
    call: &Call<'_>,
    idempotency_key: Option<&str>,
) -> Outcome {
    let prepared = Prepared {
        token,
        idempotency_key,
    };
    match *call {
        Call::Health => prepared.send(api.health()).await,
        Call::Register(registration) => prepared.send(api.register(registration)).await,
        Call::Login { username, password } => {
            let login = Login::by_username(username, password);
            prepared.send(api.login(&login)).await
        }
        Call::Me => prepared.send(api.me()).await,
        Call::Feed(feed, page) => prepared.send(api.feed(feed, Some(page))).await,
        Call::UserPosts(user, page) => prepared.send(api.user_posts(user, Some(page))).await,
        Call::Like(post) => prepared.send(api.like(post, None)).await,
        Call::Play {
            post,
            duration,
            completed,
        } => {
            let play = Play {
                duration,
                completed,
            };
            prepared.send(api.play(post, play)).await
        }
        Call::Follow(user) => prepared.send(api.follow(user)).await,
        Call::Comment { post, content } => {
            let comment = sidechain_api_client::NewComment {
                content: content.to_owned(),
                parent_id: None,
            };
            prepared.send(api.comment(post, &comment)).await
        }
        Call::CreatePost(post) => prepared.send(api.create_post(post)).await,
    }
}

/// The headers every call of this tool may carry.
struct Prepared<'a> {
    token: Option<&'a str>,
    idempotency_key: Option<&'a str>,
}

impl Prepared<'_> {
    async fn send<T>(&self, call: sidechain_api_client::Call<T>) -> Outcome {
        let mut call = call.bearer_opt(self.token);
        if let Some(key) = self.idempotency_key {
            call = call.idempotency_key(key);
        }
        call.send().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_acks_read_event_ids_and_entity_ids() {
        let ack: WriteAck = serde_json::from_str(
            r#"{"status":"ok","action":"like","target_id":"p1","event_id":"e1"}"#,
        )
        .expect("parses");
        assert_eq!(ack.event_id.as_deref(), Some("e1"));
        assert_eq!(ack.id, None);
        let ack: WriteAck =
            serde_json::from_str(r#"{"id":"c1","post_id":"p1","content":"nice"}"#).expect("parses");
        assert_eq!(ack.id.as_deref(), Some("c1"));
        assert_eq!(ack.event_id, None);
    }
}
