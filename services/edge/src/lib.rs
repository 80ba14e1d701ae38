//! The Sidechain edge: the HTTP API the plugin and web app call (port 8787).
//!
//! Every write is validated, turned into one protobuf event and stored in the JetStream
//! `EVENTS` stream before the client gets its 2xx; reads (feeds, comments, sessions) are NATS
//! requests to the cache service. Accounts live in the NATS KV bucket `users`; rate limits in
//! Redis. The edge never talks to Gorse.
//!
//! `main` reads [`EdgeConfig`] and calls [`run`]; tests call [`start`] with port 0.

pub mod auth;
pub mod cache_client;
pub mod config;
pub mod events;
pub mod http;
pub mod media;
pub mod media_urls;
pub mod page;
pub mod rate_limit;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sidechain_infra::http_server;
use sidechain_infra::service::{AdminServer, Foundation, Running, Stopping};
use sidechain_infra::status::GorseStatusView;
use sidechain_infra::users::UserStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::EdgeConfig;

use crate::auth::jwt::TokenService;
use crate::auth::password::Passwords;
use crate::auth::sessions::Sessions;
use crate::cache_client::CacheClient;
use crate::events::{EventPublisher, KeyBindings};
use crate::http::observe::{HttpMetrics, Observe};
use crate::rate_limit::RateLimiter;
use crate::state::AppState;

/// Name in logs, traces and the NATS connection.
pub const SERVICE: &str = "sidechain-edge";

/// Runs the edge until `shutdown` is cancelled and in-flight requests have drained.
pub async fn run(config: EdgeConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    start(config, shutdown).await?.wait().await
}

/// Binds the listeners and starts serving; returns where it listens.
pub async fn start(config: EdgeConfig, shutdown: CancellationToken) -> anyhow::Result<Running> {
    let foundation = Foundation::connect(SERVICE, &config.service, &shutdown).await?;
    let stream_ready = foundation.stream_ready();
    let Foundation {
        nats: nats_client,
        jetstream: js,
        redis,
        mut registry,
        readiness,
        ..
    } = foundation;

    let users = UserStore::new(js.clone());
    let cache = CacheClient::new(
        nats_client.clone(),
        config.cache_request_timeout,
        &mut registry,
    );
    let sessions = Sessions::new(
        cache.clone(),
        users.clone(),
        redis.clone(),
        nats_client.clone(),
        config.auth.session_cache_ttl,
        // Revocations are remembered as long as a token can be presented: to a refresh, up to
        // the grace after its expiry.
        config.auth.tokens.ttl + auth::jwt::REFRESH_GRACE,
        &mut registry,
    );
    let limiter = RateLimiter::new(redis, config.rate_limits, &mut registry);
    let gorse = GorseStatusView::default();
    let media_store: Arc<dyn sidechain_infra::media_store::MediaStore> =
        Arc::new(sidechain_infra::media_store::NatsMediaStore::new(
            js.clone(),
            sidechain_events::subjects::AUDIO_BUCKET,
        ));
    // Uploads need the provisioned `audio` bucket.
    let readiness = readiness.with_check("media_store", {
        let store = media_store.clone();
        move || {
            let store = store.clone();
            async move { store.check().await.map_err(|err| err.to_string()) }
        }
    });
    let audio = crate::media::Audio::new(media_store, config.audio.clone(), &mut registry);
    let state = Arc::new(AppState {
        tokens: TokenService::new(config.auth.tokens.clone()),
        passwords: Passwords::new(config.auth.password_hash_concurrency)?,
        users,
        sessions: sessions.clone(),
        events: EventPublisher::new(js.clone(), KeyBindings::new(js.clone()), &mut registry),
        cache,
        limiter: limiter.clone(),
        gorse: gorse.clone(),
        readiness: readiness.clone(),
        trusted_proxies: config.trusted_proxies.clone().into(),
        max_body_bytes: config.max_body_bytes,
        media_urls: config.media_urls.clone(),
        audio,
    });
    let observe = Arc::new(Observe {
        metrics: HttpMetrics::register(&mut registry),
        timeout: config.request_timeout,
        upload_timeout: config.audio.upload_timeout,
        trace_ratio: config.service.telemetry.otel_traces_sampler_arg,
    });

    let admin = AdminServer::start(&config.service, registry, readiness).await?;
    let api_listener = TcpListener::bind(config.api_addr())
        .await
        .with_context(|| format!("binding PORT {}", config.api_addr()))?;
    let api_addr = api_listener.local_addr()?;

    let background = TaskTracker::new();
    background.spawn({
        let (js, shutdown) = (js.clone(), shutdown.clone());
        async move { Foundation::wait_for_stream(&js, &stream_ready, &shutdown).await }
    });
    background.spawn(sessions.follow_revocations(shutdown.clone()));
    background.spawn(gorse.follow(js, shutdown.clone()));
    background.spawn(forget_idle_buckets(limiter, shutdown.clone()));

    let app = http::router(state, observe, &config.cors_allowed_origins);
    let drain_cap = config.service.shutdown_timeout;
    let api_connections = admin.connection_metrics.listener("api");
    let limits = config.connections;
    let intake = async move {
        let server =
            http_server::serve(api_listener, app, limits, api_connections, shutdown.clone());
        let capped = async {
            shutdown.cancelled().await;
            tokio::time::sleep(drain_cap).await;
        };
        tokio::select! {
            () = server => {}
            () = capped => tracing::warn!(cap_seconds = drain_cap.as_secs(), "drain cap reached; dropping open requests"),
        }
        Ok(())
    };
    let stopping = Stopping::new(admin, nats_client).drain(background, Duration::from_secs(5));
    Ok(Running::spawn("edge", Some(api_addr), intake, stopping))
}

async fn forget_idle_buckets(limiter: RateLimiter, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = every.tick() => limiter.forget_idle_local_buckets(),
            () = shutdown.cancelled() => return,
        }
    }
}
