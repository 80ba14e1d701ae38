//! The NATS side of the cache service: request/reply subjects served in the queue group
//! `cache` (so instances share the load), with bounded concurrency, one span per request
//! continuing the caller's trace, and latency metrics; plus the `cache.invalidate` broadcast,
//! which every instance receives.

use std::sync::Arc;
use std::time::Instant;

use async_nats::{Client, Subscriber};
use futures::StreamExt as _;
use prost::Message as _;
use sidechain_events::rpc::{
    CacheInvalidation, CommentsRequest, FeedRequest, LookupRequest, PostsRequest, ProfileRequest,
    SessionRequest, UserListRequest,
};
use sidechain_events::subjects;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::feeds::Feeds;
use crate::lookups::Lookups;
use crate::metrics::CacheMetrics;
use crate::profiles::{List, Profiles};
use crate::sessions::Sessions;
use crate::store::Store;

/// Everything that answers requests.
#[derive(Debug, Clone)]
pub struct Handlers {
    /// Feeds.
    pub feeds: Feeds,
    /// Session checks.
    pub sessions: Sessions,
    /// Lookups and comments.
    pub lookups: Lookups,
    /// Profiles and follow lists.
    pub profiles: Profiles,
    /// Metrics.
    pub metrics: CacheMetrics,
}

/// Which handler a subject goes to.
#[derive(Debug, Clone, Copy)]
enum Route {
    Feed,
    Session,
    Lookup,
    Comments,
    Posts,
    Profile,
    Followers,
    Following,
}

impl Route {
    fn label(self) -> &'static str {
        match self {
            Route::Feed => "feed",
            Route::Session => "auth.session",
            Route::Lookup => "lookup",
            Route::Comments => "comments.list",
            Route::Posts => "posts.get",
            Route::Profile => "users.profile",
            Route::Followers => "users.followers",
            Route::Following => "users.following",
        }
    }
}

impl Handlers {
    async fn answer(&self, route: Route, payload: &[u8]) -> Result<Vec<u8>, prost::DecodeError> {
        Ok(match route {
            Route::Feed => self
                .feeds
                .serve(&FeedRequest::decode(payload)?)
                .await
                .encode_to_vec(),
            Route::Session => self
                .sessions
                .check(&SessionRequest::decode(payload)?)
                .await
                .encode_to_vec(),
            Route::Lookup => self
                .lookups
                .lookup(&LookupRequest::decode(payload)?)
                .await
                .encode_to_vec(),
            Route::Comments => self
                .lookups
                .comments(&CommentsRequest::decode(payload)?)
                .await
                .encode_to_vec(),
            Route::Posts => self
                .lookups
                .posts(&PostsRequest::decode(payload)?)
                .await
                .encode_to_vec(),
            Route::Profile => self
                .profiles
                .profile(&ProfileRequest::decode(payload)?)
                .await
                .encode_to_vec(),
            Route::Followers => self
                .profiles
                .list(List::Followers, &UserListRequest::decode(payload)?)
                .await
                .encode_to_vec(),
            Route::Following => self
                .profiles
                .list(List::Following, &UserListRequest::decode(payload)?)
                .await
                .encode_to_vec(),
        })
    }
}

/// Subscribes to every request subject and serves until `shutdown`; then stops taking
/// requests and lets the ones in flight finish (the caller drains `tracker`).
pub async fn serve(
    client: Client,
    handlers: Handlers,
    max_concurrent: usize,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) -> Result<(), async_nats::SubscribeError> {
    let permits = Arc::new(Semaphore::new(max_concurrent));
    let routes = [
        (format!("{}*", subjects::FEED_PREFIX), Route::Feed),
        (subjects::AUTH_SESSION.to_owned(), Route::Session),
        (subjects::LOOKUP_POST.to_owned(), Route::Lookup),
        (subjects::LOOKUP_COMMENT.to_owned(), Route::Lookup),
        (subjects::COMMENTS_LIST.to_owned(), Route::Comments),
        (subjects::POSTS_GET.to_owned(), Route::Posts),
        (subjects::USERS_PROFILE.to_owned(), Route::Profile),
        (subjects::USERS_FOLLOWERS.to_owned(), Route::Followers),
        (subjects::USERS_FOLLOWING.to_owned(), Route::Following),
    ];
    for (subject, route) in routes {
        let subscription = client
            .queue_subscribe(subject, subjects::CACHE_QUEUE_GROUP.to_owned())
            .await?;
        tracker.spawn(serve_subject(
            client.clone(),
            subscription,
            route,
            handlers.clone(),
            permits.clone(),
            tracker.clone(),
            shutdown.clone(),
        ));
    }
    Ok(())
}

async fn serve_subject(
    client: Client,
    mut subscription: Subscriber,
    route: Route,
    handlers: Handlers,
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            message = subscription.next() => message,
            () = shutdown.cancelled() => break,
        };
        let Some(message) = message else { break };
        let Some(reply_to) = message.reply.clone() else {
            continue;
        };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let (client, handlers) = (client.clone(), handlers.clone());
        tracker.spawn(async move {
            let _permit = permit;
            let started = Instant::now();
            let span = sidechain_telemetry::message_span!(
                "cache serve",
                kind = "server",
                operation = "process",
                message,
            );
            let answer = handlers
                .answer(route, &message.payload)
                .instrument(span.clone())
                .await;
            let outcome = match answer {
                Ok(bytes) => {
                    if let Err(err) = client.publish(reply_to, bytes.into()).await {
                        span.in_scope(|| tracing::warn!(error = %err, "reply not sent"));
                    }
                    "ok"
                }
                Err(err) => {
                    // Not a message of this subject; the requester times out.
                    span.in_scope(|| tracing::warn!(error = %err, "undecodable request"));
                    "bad_request"
                }
            };
            handlers
                .metrics
                .served(route.label(), outcome, started.elapsed().as_secs_f64());
        });
    }
    let _ = subscription.unsubscribe().await;
}

/// Follows `cache.invalidate` until shutdown: drops in-memory copies and advances the applied
/// sequence that lookups wait on.
pub async fn follow_invalidations(
    client: Client,
    store: Store,
    feeds: Feeds,
    applied: watch::Sender<u64>,
    shutdown: CancellationToken,
) {
    let (store, feeds, applied) = (&store, &feeds, &applied);
    sidechain_infra::nats::follow_subject(
        &client,
        subjects::CACHE_INVALIDATE,
        &shutdown,
        move |message| {
            match CacheInvalidation::decode(message.payload) {
                Ok(invalidation) => apply_invalidation(store, feeds, applied, &invalidation),
                Err(_) => tracing::warn!("undecodable invalidation"),
            }
            std::future::ready(())
        },
    )
    .await;
}

/// Drops what an invalidation names from memory and advances the applied sequence.
fn apply_invalidation(
    store: &Store,
    feeds: &Feeds,
    applied: &watch::Sender<u64>,
    invalidation: &CacheInvalidation,
) {
    store.invalidate(invalidation);
    feeds.invalidate(invalidation);
    applied.send_if_modified(|current| {
        let newer = invalidation.applied_seq > *current;
        if newer {
            *current = invalidation.applied_seq;
        }
        newer
    });
}
