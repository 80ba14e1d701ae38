//! Every Redis key of the cache service, in one place.
//!
//! Keys about one post share the hash tag `{<post id>}` so each script touching them stays in
//! one Redis Cluster slot. The read-model transaction as a whole spans slots, so the read
//! models need a single Redis primary (standalone or Sentinel); see docs/operations.md.
//!
//! | key | type | what |
//! |---|---|---|
//! | `post:{P}` | hash | `data` (protobuf `Post`), one field per count (`likes`, `plays`, …: [`crate::counts::Count`]), `deleted` |
//! | `post_likes:{P}`, `post_reposts:{P}` | set | who liked / reposted |
//! | `post_reactions:{P}` | hash | user id → the emoji of their like (only likes with an emoji) |
//! | `post_reaction_counts:{P}` | hash | emoji → how many users reacted with it |
//! | `post_comments:{P}` | sorted set | comment ids by time |
//! | `post_comment_data:{P}` | hash | comment id → protobuf `CommentItem` |
//! | `comment:{C}` | hash | `post`, `user` of a comment |
//! | `user_posts:{U}` | sorted set | a user's posts by time |
//! | `following:{U}`, `followers:{U}` | set | the follow graph (membership, exact counts) |
//! | `following_by_time:{U}`, `followers_by_time:{U}` | sorted set | the same graph by follow time (list pages) |
//! | `profile:{U}` | hash | `username`, `display_name`, `bio`, `avatar_url`, `created_at_ms` of U |
//! | `timeline:{U}` | sorted set | posts fanned out to U (capped) |
//! | `recent` | sorted set | newest posts (capped): recent source and trending candidates |
//! | `big_authors` | set | authors not fanned out (too many followers) |
//! | `readmodel:applied_seq` | string | last stream sequence applied; absent means rebuild |
//! | `readmodel:rebuild_lock` | string | one instance resets the consumer |
//! | `page:<scope>` | hash | `<limit>:<offset>` → protobuf `PageSkeleton` |
//! | `page:snapshot:<scope>` | string | protobuf `PageSkeleton`: the order a ranked feed's first page was served in, for the reader's later pages (15 min) |
//! | `jwt_cache:<sha256>` | string | verified session (protobuf `UserProfile`) |
//! | `revoked:<jti>` | string | a logged-out token, until it expires |
//! | `session_epoch:<U>` | string | ms since the epoch: U's tokens issued before it are dead (sign out everywhere, password change) |

use sidechain_events::{CommentId, PostId, UserId};

use crate::feeds::{Feed, Scope};

/// A post's hash.
pub fn post(post: PostId) -> String {
    format!("post:{{{post}}}")
}

/// Who liked a post.
pub fn post_likes(post: PostId) -> String {
    format!("post_likes:{{{post}}}")
}

/// Who reposted a post.
pub fn post_reposts(post: PostId) -> String {
    format!("post_reposts:{{{post}}}")
}

/// Each user's reaction (emoji) to a post.
pub fn post_reactions(post: PostId) -> String {
    format!("post_reactions:{{{post}}}")
}

/// How many users reacted to a post with each emoji.
pub fn post_reaction_counts(post: PostId) -> String {
    format!("post_reaction_counts:{{{post}}}")
}

/// A post's comment ids by time.
pub fn post_comments(post: PostId) -> String {
    format!("post_comments:{{{post}}}")
}

/// A post's comments.
pub fn post_comment_data(post: PostId) -> String {
    format!("post_comment_data:{{{post}}}")
}

/// Where a comment is.
pub fn comment(comment: CommentId) -> String {
    format!("comment:{{{comment}}}")
}

/// A user's posts.
pub fn user_posts(user: UserId) -> String {
    format!("user_posts:{{{user}}}")
}

/// Whom a user follows.
pub fn following(user: UserId) -> String {
    format!("following:{{{user}}}")
}

/// Who follows a user.
pub fn followers(user: UserId) -> String {
    format!("followers:{{{user}}}")
}

/// Whom a user follows, scored by when (ms): pages of the following list.
pub fn following_by_time(user: UserId) -> String {
    format!("following_by_time:{{{user}}}")
}

/// Who follows a user, scored by when (ms): pages of the followers list.
pub fn followers_by_time(user: UserId) -> String {
    format!("followers_by_time:{{{user}}}")
}

/// A user's public profile (from `user_registered`, `profile_updated`, `username_changed`).
pub fn profile(user: UserId) -> String {
    format!("profile:{{{user}}}")
}

/// A user's fanned-out timeline.
pub fn timeline(user: UserId) -> String {
    format!("{TIMELINE_PREFIX}{user}{TAG_END}")
}

/// What precedes the user id in [`timeline`] keys (the fan-out script builds them).
pub const TIMELINE_PREFIX: &str = "timeline:{";
/// What follows the id in keys tagged with it.
pub const TAG_END: &str = "}";

/// Newest posts.
pub const RECENT: &str = "recent";
/// Authors read on demand instead of fanned out.
pub const BIG_AUTHORS: &str = "big_authors";
/// Last applied stream sequence.
pub const APPLIED_SEQ: &str = "readmodel:applied_seq";
/// Held while one instance resets the consumer for a rebuild.
pub const REBUILD_LOCK: &str = "readmodel:rebuild_lock";

/// What precedes the scope in [`page`] keys.
const PAGE_PREFIX: &str = "page:";

/// Cached pages of a scope.
pub fn page(scope: &Scope) -> String {
    format!("{PAGE_PREFIX}{scope}")
}

/// The kept order of a ranked feed (unified, for-you) for one reader.
pub fn snapshot(scope: &Scope) -> String {
    format!("{PAGE_PREFIX}snapshot:{scope}")
}

/// What precedes the user id in the [`page`] keys of `feed`'s scopes (the fan-out script
/// builds them).
pub fn page_prefix(feed: Feed) -> String {
    format!("{PAGE_PREFIX}{}", feed.scope_prefix())
}

pub use sidechain_infra::sessions::{jwt_cache_key as jwt_cache, revoked_key as revoked};

/// When a user's sessions last ended (every token issued before it is dead).
pub fn session_epoch(user: UserId) -> String {
    format!("session_epoch:{user}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_one_post_share_a_hash_tag() {
        let id = PostId::new();
        let tag = format!("{{{id}}}");
        for key in [
            post(id),
            post_likes(id),
            post_reposts(id),
            post_reactions(id),
            post_reaction_counts(id),
            post_comments(id),
            post_comment_data(id),
        ] {
            assert!(key.ends_with(&tag), "{key}");
        }
    }

    #[test]
    fn prefixes_handed_to_scripts_spell_the_same_keys() {
        let user = UserId::new();
        assert_eq!(format!("{TIMELINE_PREFIX}{user}{TAG_END}"), timeline(user));
        for scope in [Scope::Timeline(user), Scope::Unified(user)] {
            assert_eq!(format!("{}{user}", page_prefix(scope.feed())), page(&scope));
        }
    }

    #[test]
    fn session_keys_follow_the_brief() {
        assert_eq!(jwt_cache("abc"), "jwt_cache:abc");
    }
}
