//! How each event changes the read models: the Redis commands of one event, added to the
//! batch's transaction, and the effects to broadcast once the transaction committed.
//!
//! Every command is either idempotent or guarded (sets, sorted sets, `HSETNX`, scripts that
//! check membership), and the whole batch commits in one `MULTI`/`EXEC` together with
//! `readmodel:applied_seq`, so each event changes the models exactly once.

use std::collections::BTreeSet;

use prost::Message as _;
use redis::Pipeline;
use sidechain_events::events::event::Payload;
use sidechain_events::rpc::{CommentItem, Post, TokenRevoked};
use sidechain_events::{CommentId, DecodedEvent, PostId, UserId};

use crate::config::ModelConfig;
use crate::counts::Count;
use crate::feeds::Scope;
use crate::keys;

/// How many of an author's newest posts a new follower's timeline receives.
const BACKFILL: u64 = 50;

/// The Lua scripts of the read models (loaded at start with `SCRIPT LOAD`).
#[derive(Debug)]
pub struct Scripts {
    /// Set membership with a count.
    pub relation: redis::Script,
    /// A counter on a known post.
    pub count: redis::Script,
    /// A comment.
    pub comment: redis::Script,
    /// Fan-out of a post to followers' timelines.
    pub fanout: redis::Script,
    /// Timeline backfill on follow / cleanup on unfollow.
    pub backfill: redis::Script,
    /// A user's reaction (the emoji of a like).
    pub reaction: redis::Script,
    /// The media service's measurements merged into a post.
    pub measured: redis::Script,
}

impl Scripts {
    /// The scripts.
    pub fn new() -> Self {
        Self {
            relation: redis::Script::new(include_str!("lua/relation.lua")),
            count: redis::Script::new(include_str!("lua/count.lua")),
            comment: redis::Script::new(include_str!("lua/comment.lua")),
            fanout: redis::Script::new(include_str!("lua/fanout.lua")),
            backfill: redis::Script::new(include_str!("lua/backfill.lua")),
            reaction: redis::Script::new(include_str!("lua/reaction.lua")),
            measured: redis::Script::new(include_str!("lua/measured.lua")),
        }
    }

    /// All of them, for loading.
    pub fn all(&self) -> [&redis::Script; 7] {
        [
            &self.relation,
            &self.count,
            &self.comment,
            &self.fanout,
            &self.backfill,
            &self.reaction,
            &self.measured,
        ]
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Self::new()
    }
}

/// What the committed batch changed, for the in-process caches of every instance.
#[derive(Debug, Default)]
pub struct Effects {
    /// Page scopes whose membership changed.
    pub scopes: BTreeSet<Scope>,
    /// Posts whose data or counts changed.
    pub posts: BTreeSet<String>,
    /// Users whose following set changed.
    pub following_of: BTreeSet<String>,
    /// Tokens revoked by logouts.
    pub revoked: Vec<TokenRevoked>,
}

/// Adds the commands of `event` to the transaction `pipe`.
pub fn apply(
    pipe: &mut Pipeline,
    scripts: &Scripts,
    config: &ModelConfig,
    event: &DecodedEvent,
    effects: &mut Effects,
) {
    let actor = event.actor();
    let at = event.occurred_at_ms();
    match event.payload() {
        Payload::PostCreated(created) => {
            let Some(post_id) = parse::<PostId>(&created.post_id) else {
                return;
            };
            let post = Post {
                id: post_id.to_string(),
                user_id: actor.to_string(),
                username: event.actor_username().to_owned(),
                title: created.title.clone(),
                audio_url: created.audio_url.clone(),
                waveform_url: created.waveform_url.clone(),
                bpm: created.bpm,
                key: created.key.clone(),
                genres: created.genres.clone(),
                duration_seconds: created.duration_seconds,
                daw: created.daw.clone(),
                created_at_ms: at,
                filename: created.filename.clone(),
            };
            let post_key = keys::post(post_id);
            pipe.hset(&post_key, "data", post.encode_to_vec()).ignore();
            for count in Count::ALL {
                pipe.hset_nx(&post_key, count.field(), 0).ignore();
            }
            pipe.zadd(keys::user_posts(actor), post_id.to_string(), at)
                .ignore();
            pipe.zadd(keys::RECENT, post_id.to_string(), at).ignore();
            pipe.zremrangebyrank(keys::RECENT, 0, -(config.recent_cap as isize) - 1)
                .ignore();
            add_to_timeline(pipe, actor, post_id, at, config.timeline_cap);
            fan_out(pipe, scripts, config, actor, post_id, at, "add");
            invalidate_author(pipe, actor, effects);
            effects.posts.insert(post_id.to_string());
        }
        Payload::PostDeleted(deleted) => {
            remove_post(pipe, scripts, config, event, &deleted.post_id, effects);
        }
        // A file the media service could not use: its post goes as if deleted.
        Payload::AudioRejected(rejected) => {
            remove_post(pipe, scripts, config, event, &rejected.post_id, effects);
        }
        // Measurements win over the uploader's claims (duration) and add the waveform.
        Payload::AudioProcessed(processed) => {
            let Some(post_id) = parse::<PostId>(&processed.post_id) else {
                return;
            };
            let measured = Post {
                duration_seconds: processed.duration_seconds,
                waveform_url: processed.waveform_url.clone(),
                ..Post::default()
            };
            pipe.invoke_script(
                scripts
                    .measured
                    .key(keys::post(post_id))
                    .arg(measured.encode_to_vec()),
            )
            .ignore();
            effects.posts.insert(post_id.to_string());
        }
        Payload::Like(like) => {
            relation(
                pipe,
                scripts,
                &like.post_id,
                actor,
                "add",
                Relation::Like,
                effects,
            );
            // A plain like keeps an earlier reaction; a like with an emoji sets it.
            if !like.emoji.is_empty() {
                reaction(pipe, scripts, &like.post_id, actor, Some(&like.emoji));
            }
        }
        Payload::Unlike(unlike) => {
            relation(
                pipe,
                scripts,
                &unlike.post_id,
                actor,
                "remove",
                Relation::Like,
                effects,
            );
            reaction(pipe, scripts, &unlike.post_id, actor, None);
        }
        Payload::Repost(repost) => relation(
            pipe,
            scripts,
            &repost.post_id,
            actor,
            "add",
            Relation::Repost,
            effects,
        ),
        Payload::Unrepost(unrepost) => relation(
            pipe,
            scripts,
            &unrepost.post_id,
            actor,
            "remove",
            Relation::Repost,
            effects,
        ),
        Payload::Play(play) => count(pipe, scripts, &play.post_id, Count::Plays, effects),
        Payload::View(view) => count(pipe, scripts, &view.post_id, Count::Views, effects),
        Payload::Download(download) => {
            count(pipe, scripts, &download.post_id, Count::Downloads, effects)
        }
        Payload::Comment(comment) => {
            let (Some(post_id), Some(comment_id)) = (
                parse::<PostId>(&comment.post_id),
                parse::<CommentId>(&comment.comment_id),
            ) else {
                return;
            };
            let item = CommentItem {
                id: comment_id.to_string(),
                post_id: post_id.to_string(),
                user_id: actor.to_string(),
                username: event.actor_username().to_owned(),
                content: comment.content.clone(),
                parent_id: comment.parent_id.clone(),
                created_at_ms: at,
                ..CommentItem::default()
            };
            pipe.invoke_script(
                scripts
                    .comment
                    .key(keys::post(post_id))
                    .key(keys::post_comments(post_id))
                    .key(keys::post_comment_data(post_id))
                    .arg(comment_id.to_string())
                    .arg(at)
                    .arg(item.encode_to_vec())
                    .arg(Count::Comments.field()),
            )
            .ignore();
            pipe.hset_multiple(
                keys::comment(comment_id),
                &[("post", post_id.to_string()), ("user", actor.to_string())],
            )
            .ignore();
            effects.posts.insert(post_id.to_string());
        }
        Payload::Follow(follow) => {
            let Some(target) = parse::<UserId>(&follow.target_user_id) else {
                return;
            };
            pipe.sadd(keys::following(actor), target.to_string())
                .ignore();
            pipe.sadd(keys::followers(target), actor.to_string())
                .ignore();
            // NX: a repeated follow keeps the first follow's time (and its place in the lists).
            pipe.cmd("ZADD")
                .arg(keys::following_by_time(actor))
                .arg("NX")
                .arg(at)
                .arg(target.to_string())
                .ignore();
            pipe.cmd("ZADD")
                .arg(keys::followers_by_time(target))
                .arg("NX")
                .arg(at)
                .arg(actor.to_string())
                .ignore();
            backfill(pipe, scripts, config, actor, target, "add");
            follow_changed(pipe, actor, effects);
        }
        Payload::Unfollow(unfollow) => {
            let Some(target) = parse::<UserId>(&unfollow.target_user_id) else {
                return;
            };
            pipe.srem(keys::following(actor), target.to_string())
                .ignore();
            pipe.srem(keys::followers(target), actor.to_string())
                .ignore();
            pipe.zrem(keys::following_by_time(actor), target.to_string())
                .ignore();
            pipe.zrem(keys::followers_by_time(target), actor.to_string())
                .ignore();
            backfill(pipe, scripts, config, actor, target, "remove");
            follow_changed(pipe, actor, effects);
        }
        Payload::Logout(logout) => {
            let remaining_ms = logout.expires_at_ms - sidechain_events::now_ms();
            if remaining_ms > 0 && !logout.token_id.is_empty() {
                pipe.pset_ex(keys::revoked(&logout.token_id), 1, remaining_ms as u64)
                    .ignore();
            }
            pipe.del(keys::jwt_cache(&logout.token_sha256)).ignore();
            effects.revoked.push(TokenRevoked {
                token_sha256: logout.token_sha256.clone(),
                expires_at_ms: logout.expires_at_ms,
                ..TokenRevoked::default()
            });
        }
        Payload::SessionsEnded(ended) => {
            // Events of one user are applied in order and epochs only move forward.
            pipe.set(keys::session_epoch(actor), ended.valid_after_ms)
                .ignore();
            effects.revoked.push(TokenRevoked {
                user_id: actor.to_string(),
                valid_after_ms: ended.valid_after_ms,
                ..TokenRevoked::default()
            });
        }
        // Accounts live in the users bucket; the public part is derived for lists and authors.
        Payload::UserRegistered(registered) => {
            let Some(user) = parse::<UserId>(&registered.user_id) else {
                return;
            };
            pipe.hset_multiple(
                keys::profile(user),
                &[
                    ("username", registered.username.clone()),
                    ("display_name", registered.display_name.clone()),
                    ("created_at_ms", at.to_string()),
                ],
            )
            .ignore();
        }
        Payload::ProfileUpdated(updated) => {
            pipe.hset_multiple(
                keys::profile(actor),
                &[
                    ("display_name", updated.display_name.clone()),
                    ("bio", updated.bio.clone()),
                    ("avatar_url", updated.avatar_url.clone()),
                ],
            )
            .ignore();
        }
        Payload::UsernameChanged(changed) => {
            pipe.hset(keys::profile(actor), "username", &changed.new_username)
                .ignore();
        }
        // Listens and recommendation clicks only feed Gorse (a listen's play was counted by its
        // own `play` event).
        Payload::Listen(_) | Payload::RecommendationClick(_) => {}
        // The post arrives as the `post_created` published beside the upload.
        Payload::AudioUploaded(_) => {}
    }
}

/// Takes a post out of every list (deleted by its author, or its audio rejected).
fn remove_post(
    pipe: &mut Pipeline,
    scripts: &Scripts,
    config: &ModelConfig,
    event: &DecodedEvent,
    post_id: &str,
    effects: &mut Effects,
) {
    let (actor, at) = (event.actor(), event.occurred_at_ms());
    let Some(post_id) = parse::<PostId>(post_id) else {
        return;
    };
    pipe.hset(keys::post(post_id), "deleted", 1).ignore();
    pipe.zrem(keys::user_posts(actor), post_id.to_string())
        .ignore();
    pipe.zrem(keys::RECENT, post_id.to_string()).ignore();
    pipe.zrem(keys::timeline(actor), post_id.to_string())
        .ignore();
    fan_out(pipe, scripts, config, actor, post_id, at, "remove");
    invalidate_author(pipe, actor, effects);
    invalidate(pipe, Scope::Trending, effects);
    effects.posts.insert(post_id.to_string());
}

fn parse<T: std::str::FromStr>(text: &str) -> Option<T> {
    let parsed = text.parse().ok();
    if parsed.is_none() {
        tracing::warn!(id = text, "event carries an invalid id; skipped");
    }
    parsed
}

fn add_to_timeline(pipe: &mut Pipeline, user: UserId, post: PostId, at: i64, cap: u64) {
    let timeline = keys::timeline(user);
    pipe.zadd(&timeline, post.to_string(), at).ignore();
    pipe.zremrangebyrank(&timeline, 0, -(cap as isize) - 1)
        .ignore();
}

/// Queues the fan-out script. Unlike every other command its result is kept: the followers
/// reached come back from `EXEC`, in order, and their pages are invalidated in memory.
fn fan_out(
    pipe: &mut Pipeline,
    scripts: &Scripts,
    config: &ModelConfig,
    author: UserId,
    post: PostId,
    at: i64,
    mode: &str,
) {
    let mut invocation = scripts.fanout.key(keys::followers(author));
    invocation
        .key(keys::BIG_AUTHORS)
        .arg(post.to_string())
        .arg(at)
        .arg(mode)
        .arg(config.fanout_limit)
        .arg(config.timeline_cap)
        .arg(author.to_string())
        .arg(keys::TIMELINE_PREFIX)
        .arg(keys::TAG_END);
    for scope in fanned_out_scopes(author) {
        invocation.arg(keys::page_prefix(scope.feed()));
    }
    pipe.invoke_script(&invocation);
}

/// The scopes whose pages the fan-out script dropped in Redis for `follower`.
pub fn fanned_out_scopes(follower: UserId) -> [Scope; 2] {
    [Scope::Timeline(follower), Scope::Unified(follower)]
}

fn backfill(
    pipe: &mut Pipeline,
    scripts: &Scripts,
    config: &ModelConfig,
    follower: UserId,
    author: UserId,
    mode: &str,
) {
    pipe.invoke_script(
        scripts
            .backfill
            .key(keys::user_posts(author))
            .key(keys::timeline(follower))
            .arg(mode)
            .arg(BACKFILL)
            .arg(config.timeline_cap),
    )
    .ignore();
}

#[derive(Clone, Copy)]
enum Relation {
    Like,
    Repost,
}

fn relation(
    pipe: &mut Pipeline,
    scripts: &Scripts,
    post_id: &str,
    user: UserId,
    mode: &str,
    relation: Relation,
    effects: &mut Effects,
) {
    let Some(post) = parse::<PostId>(post_id) else {
        return;
    };
    let (set, count) = match relation {
        Relation::Like => (keys::post_likes(post), Count::Likes),
        Relation::Repost => (keys::post_reposts(post), Count::Reposts),
    };
    pipe.invoke_script(
        scripts
            .relation
            .key(set)
            .key(keys::post(post))
            .arg(user.to_string())
            .arg(mode)
            .arg(count.field()),
    )
    .ignore();
    effects.posts.insert(post.to_string());
}

/// Sets (`Some(emoji)`) or clears (`None`) the user's reaction to a post.
fn reaction(
    pipe: &mut Pipeline,
    scripts: &Scripts,
    post_id: &str,
    user: UserId,
    emoji: Option<&str>,
) {
    let Some(post) = parse::<PostId>(post_id) else {
        return;
    };
    let mut invocation = scripts.reaction.key(keys::post(post));
    invocation
        .key(keys::post_reactions(post))
        .key(keys::post_reaction_counts(post))
        .arg(user.to_string());
    match emoji {
        Some(emoji) => invocation.arg("set").arg(emoji),
        None => invocation.arg("clear"),
    };
    pipe.invoke_script(&invocation).ignore();
}

fn count(
    pipe: &mut Pipeline,
    scripts: &Scripts,
    post_id: &str,
    count: Count,
    effects: &mut Effects,
) {
    let Some(post) = parse::<PostId>(post_id) else {
        return;
    };
    pipe.invoke_script(scripts.count.key(keys::post(post)).arg(count.field()))
        .ignore();
    effects.posts.insert(post.to_string());
}

fn invalidate(pipe: &mut Pipeline, scope: Scope, effects: &mut Effects) {
    pipe.del(keys::page(&scope)).ignore();
    effects.scopes.insert(scope);
}

fn invalidate_author(pipe: &mut Pipeline, author: UserId, effects: &mut Effects) {
    invalidate(pipe, Scope::User(author), effects);
    invalidate(pipe, Scope::Timeline(author), effects);
    invalidate(pipe, Scope::Unified(author), effects);
}

fn follow_changed(pipe: &mut Pipeline, follower: UserId, effects: &mut Effects) {
    invalidate(pipe, Scope::Timeline(follower), effects);
    invalidate(pipe, Scope::Unified(follower), effects);
    effects.following_of.insert(follower.to_string());
}
