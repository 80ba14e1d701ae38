//! The Sidechain cache service: read models, feeds, and sessions.
//!
//! - [`read_models`]: a durable consumer applies the `EVENTS` stream to read models in Redis
//!   (posts and counts, each user's posts, the follow graph, fanned-out timelines, recent
//!   posts), in order and exactly once; an empty Redis is rebuilt by replaying the stream.
//! - [`feeds`]: timeline, user, trending, unified and for-you pages, cached in memory and in
//!   Redis with per-feed TTLs, invalidated by events, hydrated with live counts when served.
//! - [`sessions`]: the edge's session checks, with the `jwt_cache:*` cache and revocations.
//! - [`lookups`]: post/comment existence (with a read-your-writes barrier) and comment pages.
//! - [`profiles`]: a user's counts and the viewer's relation to them, follower/following pages.
//! - [`server`]: all of it over NATS request/reply in the queue group `cache`.

pub mod config;
pub mod counts;
pub mod feeds;
pub mod keys;
pub mod lookups;
pub mod metrics;
pub mod profiles;
pub mod read_models;
pub mod server;
pub mod sessions;
pub mod store;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context as _;
use sidechain_gorse::GorseClient;
use sidechain_infra::service::{AdminServer, Foundation, Running, Stopping, until_cancelled};
use sidechain_infra::status::GorseStatusView;
use sidechain_infra::users::UserStore;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;

use crate::feeds::Feeds;
use crate::feeds::page_cache::PageCache;
use crate::lookups::Lookups;
use crate::metrics::CacheMetrics;
use crate::profiles::Profiles;
use crate::read_models::Applier;
use crate::server::Handlers;
use crate::sessions::Sessions;
use crate::store::Store;

/// Name in logs, traces and the NATS connection.
pub const SERVICE: &str = "sidechain-cache";

/// Runs until `shutdown` is cancelled and in-flight requests have drained.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    start(config, shutdown).await?.wait().await
}

/// Connects and starts serving; returns where the admin server listens.
pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<Running> {
    let foundation = Foundation::connect(SERVICE, &config.service, &shutdown).await?;
    let stream_ready = foundation.stream_ready();
    let Foundation {
        nats,
        jetstream: js,
        redis,
        redis_metrics,
        mut registry,
        readiness,
        ..
    } = foundation;
    let metrics = CacheMetrics::register(&mut registry);
    let gorse = GorseClient::new(&config.gorse, &mut registry)?;
    let entries = config.cache.cache_memory_entries;

    let store = Store::new(redis.clone(), entries, metrics.clone());
    let pages = PageCache::new(
        redis.clone(),
        entries,
        config.cache.cache_memory_max_ttl,
        config.cache.cache_pages,
        metrics.clone(),
    );
    let gorse_status = GorseStatusView::default();
    let feeds = Feeds::new(
        store.clone(),
        pages,
        gorse,
        gorse_status.clone(),
        config.cache.clone(),
        config.models.clone(),
        metrics.clone(),
    );
    let sessions = Sessions::new(
        redis.clone(),
        UserStore::new(js.clone()),
        config.cache.session_cache_ttl,
        metrics.clone(),
    );
    let (applied_tx, applied_rx) = watch::channel(0u64);
    let lookups = Lookups::new(redis.clone(), js.clone(), applied_rx);
    let profiles = Profiles::new(store.clone(), lookups.clone());

    let applying = Arc::new(AtomicBool::new(false));
    let readiness = readiness.with_flag("read_models", applying.clone(), "consumer not started");
    let admin = AdminServer::start(&config.service, registry, readiness).await?;

    let tasks = TaskTracker::new();
    let requests = TaskTracker::new();
    // The applier has a connection of its own: its transactions never queue behind requests.
    let applier_redis = sidechain_infra::redis::connect(&config.service.redis)
        .context("REDIS_URL")?
        .with_metrics(redis_metrics);
    let applier = Applier::new(
        js.clone(),
        applier_redis,
        nats.clone(),
        config.models.clone(),
        metrics.clone(),
        applying,
    );
    tasks.spawn({
        let (js, shutdown) = (js.clone(), shutdown.clone());
        async move {
            if Foundation::wait_for_stream(&js, &stream_ready, &shutdown).await {
                applier.run(shutdown).await;
            }
        }
    });
    tasks.spawn(server::follow_invalidations(
        nats.clone(),
        store,
        feeds.clone(),
        applied_tx,
        shutdown.clone(),
    ));
    tasks.spawn(gorse_status.follow(js, shutdown.clone()));
    server::serve(
        nats.clone(),
        Handlers {
            feeds,
            sessions,
            lookups,
            profiles,
            metrics,
        },
        config.cache.cache_max_concurrent_requests,
        requests.clone(),
        shutdown.clone(),
    )
    .await
    .context("subscribing to request subjects")?;

    let drain_cap = config.service.shutdown_timeout;
    let stopping = Stopping::new(admin, nats)
        .drain(requests, drain_cap)
        .drain(tasks, drain_cap);
    Ok(Running::spawn(
        "cache service",
        None,
        until_cancelled(shutdown),
        stopping,
    ))
}
