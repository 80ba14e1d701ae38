//! Every NATS name the services agree on: the stream, subjects, queue groups, KV buckets.
//! `docs/events.md` is the prose version of this file.

/// The JetStream stream holding every event.
pub const EVENTS_STREAM: &str = "EVENTS";
/// Prefix of event subjects; an event of kind `like` goes to `events.like`.
pub const EVENTS_PREFIX: &str = "events.";
/// Wildcard covering every event subject (the stream's subject filter).
pub const EVENTS_ALL: &str = "events.>";

/// Request/reply: feed pages, answered by the cache service. Full subject `feed.<kind>`.
pub const FEED_PREFIX: &str = "feed.";
/// Request/reply: session check of a verified token.
pub const AUTH_SESSION: &str = "auth.session";
/// Broadcast (core NATS): a token was revoked; every edge drops its cached session.
pub const AUTH_REVOKED: &str = "auth.revoked";
/// Request/reply: does this post exist, who owns it.
pub const LOOKUP_POST: &str = "lookup.post";
/// Request/reply: does this comment exist, which post is it on.
pub const LOOKUP_COMMENT: &str = "lookup.comment";
/// Request/reply: a page of a post's comments.
pub const COMMENTS_LIST: &str = "comments.list";
/// Request/reply: posts by id from the read models (`PostsRequest` → `PostsReply`), asked by
/// the feedback service to write Gorse items its placeholders stand in for.
pub const POSTS_GET: &str = "posts.get";
/// Largest number of ids in one `posts.get` request.
pub const POSTS_GET_MAX_IDS: usize = 1000;
/// Request/reply: a user's counts and the viewer's relation to them.
pub const USERS_PROFILE: &str = "users.profile";
/// Request/reply: a page of a user's followers.
pub const USERS_FOLLOWERS: &str = "users.followers";
/// Request/reply: a page of the users someone follows.
pub const USERS_FOLLOWING: &str = "users.following";
/// Broadcast (core NATS): cache instances drop in-process copies.
pub const CACHE_INVALIDATE: &str = "cache.invalidate";
/// Queue group shared by all cache instances for request/reply subjects.
pub const CACHE_QUEUE_GROUP: &str = "cache";

/// KV bucket of user accounts (owned by the edge).
pub const USERS_BUCKET: &str = "users";
/// KV bucket of Idempotency-Key bindings (owned by the edge; entries live one duplicate window).
pub const IDEMPOTENCY_BUCKET: &str = "idempotency";
/// KV bucket of service status published for others (Gorse health, by the feedback service).
pub const STATUS_BUCKET: &str = "status";
/// Key of the Gorse health in the status bucket; its subject is `$KV.status.gorse`.
pub const GORSE_STATUS_KEY: &str = "gorse";

/// Object-store bucket of uploaded audio and the waveforms computed from it (stream `OBJ_audio`).
pub const AUDIO_BUCKET: &str = "audio";

/// Durable consumer of the media service (filtered to `events.audio_uploaded`).
pub const MEDIA_CONSUMER: &str = "media";

/// Durable consumer of the feedback service.
pub const FEEDBACK_CONSUMER: &str = "feedback";
/// Durable consumer of the cache service's read-model builder.
pub const CACHE_CONSUMER: &str = "cache-read-models";

/// The request/reply subject of a feed kind, e.g. `feed.timeline`.
pub fn feed_subject(kind: crate::rpc::FeedKind) -> String {
    use crate::rpc::FeedKind;
    let name = match kind {
        FeedKind::Timeline => "timeline",
        FeedKind::Unified => "unified",
        FeedKind::Trending => "trending",
        FeedKind::User => "user",
        FeedKind::ForYou => "for_you",
        FeedKind::Unspecified => "unspecified",
    };
    format!("{FEED_PREFIX}{name}")
}
