//! `sidechain-floor`: the physical floors of the Sidechain request paths (docs/benchmarks.md,
//! DESIGN "Performance floors"). Each subcommand is the least a program on the services' own
//! stack (axum 0.8 on hyper 1, async-nats 0.51, redis 1.8, tokio's default runtime) can do
//! to serve that path, so `sidechain-bench` can put the services' figures beside them:
//!
//! - `hello --port P`: `GET /hello` answers a fixed 600-byte JSON body (bare HTTP).
//! - `feed --port P --nats URL --redis URL`: `GET /feed` makes a NATS request to a responder
//!   in this process (its own connection, as the cache service has), which does a Redis `GET`
//!   of a 600-byte value and replies with it (the cached feed read).
//! - `like --port P --nats URL`: `POST /like` publishes the body to a file-backed JetStream
//!   stream, waits for the ack and answers 202 (the like write).
//!
//! Nothing else: no logging, metrics, auth, validation or limits. That is the point.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use async_nats::jetstream;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use clap::{Parser, Subcommand};
use futures::StreamExt as _;

/// Subject the feed floor's responder serves.
const FEED_SUBJECT: &str = "floor.feed";
/// Redis key of the feed floor's page.
const FEED_KEY: &str = "floor:page";
/// Stream and subject of the like floor.
const LIKE_STREAM: &str = "FLOOR_LIKES";
const LIKE_SUBJECT: &str = "floor.likes";
/// Size of the JSON bodies of `hello` and `feed`, as in DESIGN.md's floors.
const BODY_BYTES: usize = 600;

/// Minimal programs that are the physical floors of the Sidechain request paths.
#[derive(Debug, Parser)]
#[command(name = "sidechain-floor", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Floor,
}

#[derive(Debug, Subcommand)]
enum Floor {
    /// GET /hello → a fixed 600-byte JSON body.
    Hello {
        /// Port to listen on (127.0.0.1).
        #[arg(long)]
        port: u16,
    },
    /// GET /feed → NATS request → in-process responder → Redis GET of 600 bytes → reply.
    Feed {
        /// Port to listen on (127.0.0.1).
        #[arg(long)]
        port: u16,
        /// NATS server URL.
        #[arg(long)]
        nats: String,
        /// NKey seed file to connect with (the project's servers require one).
        #[arg(long)]
        nkey_file: Option<std::path::PathBuf>,
        /// Redis URL.
        #[arg(long)]
        redis: String,
    },
    /// POST /like → JetStream publish of the body, await the ack → 202.
    Like {
        /// Port to listen on (127.0.0.1).
        #[arg(long)]
        port: u16,
        /// NATS server URL.
        #[arg(long)]
        nats: String,
        /// NKey seed file to connect with (the project's servers require one).
        #[arg(long)]
        nkey_file: Option<std::path::PathBuf>,
    },
}

/// A plain connection, with the seed in `nkey_file` if given.
async fn connect_nats(
    url: &str,
    nkey_file: Option<&std::path::Path>,
) -> anyhow::Result<async_nats::Client> {
    let options = match nkey_file {
        Some(path) => async_nats::ConnectOptions::with_nkey(
            std::fs::read_to_string(path)
                .with_context(|| format!("read {}", path.display()))?
                .trim()
                .to_owned(),
        ),
        None => async_nats::ConnectOptions::new(),
    };
    Ok(options.connect(url).await?)
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse().command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sidechain-floor: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(floor: Floor) -> anyhow::Result<()> {
    match floor {
        Floor::Hello { port } => {
            let body = Bytes::from(json_body());
            let app = Router::new().route(
                "/hello",
                get(move || {
                    let body = body.clone();
                    async move { ([(header::CONTENT_TYPE, "application/json")], body) }
                }),
            );
            serve(port, app).await
        }
        Floor::Feed {
            port,
            nats,
            nkey_file,
            redis,
        } => {
            let redis = redis::Client::open(redis.as_str())
                .context("redis URL")?
                .get_connection_manager()
                .await
                .context("connect to Redis")?;
            let mut setup = redis.clone();
            let () = redis::cmd("SET")
                .arg(FEED_KEY)
                .arg(json_body())
                .query_async(&mut setup)
                .await
                .context("store the page")?;
            // The responder has its own connection, as the cache service is another process.
            let responder = connect_nats(&nats, nkey_file.as_deref())
                .await
                .context("connect the responder to NATS")?;
            let mut requests = responder
                .subscribe(FEED_SUBJECT)
                .await
                .context("subscribe")?;
            responder.flush().await.context("flush the subscription")?;
            tokio::spawn(async move {
                while let Some(request) = requests.next().await {
                    let Some(reply) = request.reply else { continue };
                    let (nats, mut redis) = (responder.clone(), redis.clone());
                    tokio::spawn(async move {
                        let page: Vec<u8> = redis::cmd("GET")
                            .arg(FEED_KEY)
                            .query_async(&mut redis)
                            .await
                            .unwrap_or_default();
                        let _ = nats.publish(reply, page.into()).await;
                    });
                }
            });
            let client = connect_nats(&nats, nkey_file.as_deref())
                .await
                .context("connect to NATS")?;
            let app = Router::new()
                .route("/feed", get(feed))
                .with_state(Arc::new(client));
            serve(port, app).await
        }
        Floor::Like {
            port,
            nats,
            nkey_file,
        } => {
            let client = connect_nats(&nats, nkey_file.as_deref())
                .await
                .context("connect to NATS")?;
            let js = jetstream::new(client);
            js.get_or_create_stream(jetstream::stream::Config {
                name: LIKE_STREAM.to_owned(),
                subjects: vec![LIKE_SUBJECT.to_owned()],
                // File storage, like the EVENTS stream.
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            })
            .await
            .context("create the stream")?;
            let app = Router::new()
                .route("/like", post(like))
                .with_state(Arc::new(js));
            serve(port, app).await
        }
    }
}

async fn feed(State(nats): State<Arc<async_nats::Client>>) -> impl IntoResponse {
    match nats.request(FEED_SUBJECT, Bytes::new()).await {
        Ok(reply) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            reply.payload,
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "application/json")],
            Bytes::new(),
        ),
    }
}

async fn like(State(js): State<Arc<jetstream::Context>>, body: Bytes) -> StatusCode {
    match js.publish(LIKE_SUBJECT, body).await {
        Ok(ack) => match ack.await {
            Ok(_) => StatusCode::ACCEPTED,
            Err(_) => StatusCode::SERVICE_UNAVAILABLE,
        },
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn serve(port: u16, app: Router) -> anyhow::Result<()> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listen on {addr}"))?;
    eprintln!("sidechain-floor listening on {addr}");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serve")
}

/// A 600-byte JSON object, shaped roughly like a feed item.
fn json_body() -> Vec<u8> {
    let head = r#"{"id":"0190a6d2-8f1e-7c3a-9d4b-5e6f7a8b9c0d","username":"floor","bpm":120,"key":"A minor","padding":""#;
    let tail = r#""}"#;
    let mut body = String::with_capacity(BODY_BYTES);
    body.push_str(head);
    body.extend(std::iter::repeat_n(
        'x',
        BODY_BYTES - head.len() - tail.len(),
    ));
    body.push_str(tail);
    body.into_bytes()
}

#[cfg(test)]
mod tests {
    #[test]
    fn bodies_are_600_bytes_of_json() {
        let body = super::json_body();
        assert_eq!(body.len(), super::BODY_BYTES);
        let value: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(value["username"], "floor");
    }
}
