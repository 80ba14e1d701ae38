//! Profiles for the edge: a user's counts and the viewer's relation to them (`users.profile`),
//! and pages of followers and following (`users.followers`, `users.following`).
//!
//! Counts are the cardinalities of the follow sets and the user's posts, so they are exact
//! however often a follow is repeated: a set holds each follower once. Lists page through
//! `followers_by_time:{U}` / `following_by_time:{U}`, newest relation first.
//!
//! Read-your-writes: every request first waits (up to [`crate::lookups::BARRIER_TIMEOUT`])
//! until the read models include every event the stream held when it arrived, so a client that
//! follows someone and then opens their profile sees the follow counted.

use sidechain_events::UserId;
use sidechain_events::rpc::{
    ErrorCode, ProfileReply, ProfileRequest, RpcError, UserListItem, UserListReply, UserListRequest,
};

use crate::keys;
use crate::lookups::Lookups;
use crate::store::Store;

/// Which list of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    /// Who follows the user.
    Followers,
    /// Whom the user follows.
    Following,
}

/// Answers profile requests.
#[derive(Debug, Clone)]
pub struct Profiles {
    store: Store,
    lookups: Lookups,
}

fn unavailable() -> RpcError {
    RpcError {
        code: ErrorCode::Unavailable as i32,
        message: "profiles are temporarily unavailable".to_owned(),
    }
}

fn invalid(message: &str) -> RpcError {
    RpcError {
        code: ErrorCode::InvalidArgument as i32,
        message: message.to_owned(),
    }
}

impl Profiles {
    /// Profiles over the read models of `store`; `lookups` provides the read-your-writes wait.
    pub fn new(store: Store, lookups: Lookups) -> Self {
        Self { store, lookups }
    }

    /// Answers `users.profile`.
    pub async fn profile(&self, request: &ProfileRequest) -> ProfileReply {
        let Ok(user) = request.user_id.parse::<UserId>() else {
            return ProfileReply {
                error: Some(invalid("user_id is not a UUID")),
                ..Default::default()
            };
        };
        let viewer = request.viewer_user_id.parse::<UserId>().ok();
        self.lookups.catch_up().await;
        match self.counts(user, viewer).await {
            Ok(reply) => reply,
            Err(err) => {
                tracing::warn!(error = %err, "profile lookup failed");
                ProfileReply {
                    error: Some(unavailable()),
                    ..Default::default()
                }
            }
        }
    }

    async fn counts(
        &self,
        user: UserId,
        viewer: Option<UserId>,
    ) -> redis::RedisResult<ProfileReply> {
        let mut conn = self.store.redis();
        let viewer_text = viewer.map(|v| v.to_string()).unwrap_or_default();
        let (followers, following, posts, is_following, follows_you): (u64, u64, u64, bool, bool) =
            redis::pipe()
                .scard(keys::followers(user))
                .scard(keys::following(user))
                .zcard(keys::user_posts(user))
                .sismember(keys::followers(user), &viewer_text)
                .sismember(keys::following(user), &viewer_text)
                .query_async(&mut conn)
                .await?;
        Ok(ProfileReply {
            follower_count: followers,
            following_count: following,
            post_count: posts,
            is_following: viewer.is_some() && is_following,
            follows_you: viewer.is_some() && follows_you,
            error: None,
        })
    }

    /// Answers `users.followers` / `users.following`.
    pub async fn list(&self, list: List, request: &UserListRequest) -> UserListReply {
        let Ok(user) = request.user_id.parse::<UserId>() else {
            return UserListReply {
                error: Some(invalid("user_id is not a UUID")),
                ..Default::default()
            };
        };
        let viewer = request.viewer_user_id.parse::<UserId>().ok();
        self.lookups.catch_up().await;
        let limit = request.limit.clamp(1, 100);
        match self.page(list, user, viewer, limit, request.offset).await {
            Ok(reply) => reply,
            Err(err) => {
                tracing::warn!(error = %err, "user list lookup failed");
                UserListReply {
                    error: Some(unavailable()),
                    ..Default::default()
                }
            }
        }
    }

    async fn page(
        &self,
        list: List,
        user: UserId,
        viewer: Option<UserId>,
        limit: u32,
        offset: u32,
    ) -> redis::RedisResult<UserListReply> {
        let key = match list {
            List::Followers => keys::followers_by_time(user),
            List::Following => keys::following_by_time(user),
        };
        let mut conn = self.store.redis();
        let start = offset as isize;
        // One more than a page: whether there is a next one.
        let (ids, total): (Vec<String>, u64) = redis::pipe()
            .zrevrange(&key, start, start + limit as isize)
            .zcard(&key)
            .query_async(&mut conn)
            .await?;
        let has_more = ids.len() > limit as usize;
        let ids: Vec<UserId> = ids
            .iter()
            .take(limit as usize)
            .filter_map(|id| id.parse().ok())
            .collect();
        if ids.is_empty() {
            return Ok(UserListReply {
                total,
                has_more,
                ..Default::default()
            });
        }
        let profiles = self.store.profiles(&ids).await?;
        let viewer_text = viewer.map(|v| v.to_string()).unwrap_or_default();
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.scard(keys::followers(*id))
                .scard(keys::following(*id))
                .sismember(keys::followers(*id), &viewer_text)
                .sismember(keys::following(*id), &viewer_text);
        }
        let facts: Vec<(u64, u64, bool, bool)> = pipe.query_async(&mut conn).await?;
        let users = ids
            .iter()
            .zip(facts)
            .map(|(id, (followers, following, is_following, follows_you))| {
                let profile = profiles.get(id).map(|p| (**p).clone()).unwrap_or_default();
                UserListItem {
                    id: id.to_string(),
                    username: profile.username,
                    display_name: profile.display_name,
                    avatar_url: profile.avatar_url,
                    bio: profile.bio,
                    follower_count: followers,
                    following_count: following,
                    is_following: viewer.is_some() && is_following,
                    follows_you: viewer.is_some() && follows_you,
                }
            })
            .collect();
        Ok(UserListReply {
            users,
            total,
            has_more,
            error: None,
        })
    }
}
