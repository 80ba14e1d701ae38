//! Backlogs for the consumer benchmarks: events written straight to the `EVENTS` stream (the
//! same envelope, subject and `Nats-Msg-Id` the edge uses), many publishes in flight, so N
//! events are stored in a second or two instead of N API calls.
//!
//! - [`likes`]: N likes, each a distinct (user, post) pair, so none merges with another in a
//!   feedback batch and Gorse receives exactly N rows.
//! - [`history`]: a plausible history for the cache service to replay: registrations, then
//!   posts, follows and likes interleaved (1 : 2 : 17), likes and follows on existing posts
//!   and users.

use std::time::Instant;

use anyhow::Context as _;
use async_nats::jetstream;
use futures::StreamExt as _;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde::Serialize;
use sidechain_events::events::event::Payload;
use sidechain_events::events::{Follow, Like, PostCreated, UserRegistered};
use sidechain_events::{EventId, NewEvent, PostId, UserId};
use sidechain_infra::nats::{StreamConfig, ensure_events_stream};

/// Publishes in flight at once, as in DESIGN.md's "256 in flight" JetStream floor.
const IN_FLIGHT: usize = 256;

/// How the backlog was stored.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Published {
    /// Events stored.
    pub(crate) events: u64,
    /// Time to store them all (acks included).
    pub(crate) seconds: f64,
    /// Events per second (the JetStream publish floor of this run).
    pub(crate) rate: f64,
    /// The stream's last sequence afterwards.
    pub(crate) last_sequence: u64,
}

/// Stores `events` in the `EVENTS` stream (created with the services' settings if missing).
pub(crate) async fn publish(
    js: &jetstream::Context,
    events: Vec<NewEvent>,
) -> anyhow::Result<Published> {
    ensure_events_stream(js, &StreamConfig::default())
        .await
        .map_err(|e| anyhow::anyhow!("create the EVENTS stream: {e}"))?;
    let count = events.len() as u64;
    let start = Instant::now();
    let mut acks = futures::stream::iter(events.into_iter().map(|event| {
        let js = js.clone();
        async move {
            let message = jetstream::message::PublishMessage::build()
                .payload(event.encode().into())
                .message_id(event.id.to_string());
            js.send_publish(event.subject(), message).await?.await
        }
    }))
    .buffer_unordered(IN_FLIGHT);
    let mut last_sequence = 0;
    while let Some(ack) = acks.next().await {
        let ack = ack.context("publish an event")?;
        last_sequence = last_sequence.max(ack.sequence);
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(Published {
        events: count,
        seconds,
        rate: count as f64 / seconds.max(1e-9),
        last_sequence,
    })
}

/// `n` likes, each by a distinct (user, post) pair.
pub(crate) fn likes(n: u32) -> Vec<NewEvent> {
    const POSTS: u32 = 100;
    let posts: Vec<PostId> = (0..POSTS).map(|_| PostId::new()).collect();
    let users: Vec<UserId> = (0..n.div_ceil(POSTS)).map(|_| UserId::new()).collect();
    (0..n)
        .map(|i| {
            let user = users[(i / POSTS) as usize];
            let post = posts[(i % POSTS) as usize];
            NewEvent::new(
                EventId::new(),
                user,
                &format!("bench{}", i / POSTS),
                Payload::Like(Like {
                    post_id: post.to_string(),
                    ..Default::default()
                }),
            )
        })
        .collect()
}

/// About `n` events of a plausible history (see the module docs).
pub(crate) fn history(n: u32, seed: u64) -> Vec<NewEvent> {
    let mut rng = StdRng::seed_from_u64(seed);
    let user_count = (n / 100).max(10);
    let users: Vec<(UserId, String)> = (0..user_count)
        .map(|i| (UserId::new(), format!("replay{i}")))
        .collect();
    let mut events: Vec<NewEvent> = users
        .iter()
        .map(|(id, name)| {
            NewEvent::new(
                EventId::new(),
                *id,
                name,
                Payload::UserRegistered(UserRegistered {
                    user_id: id.to_string(),
                    username: name.clone(),
                    display_name: name.clone(),
                }),
            )
        })
        .collect();
    let mut posts: Vec<PostId> = Vec::new();
    let mut i = 0u32;
    while events.len() < n as usize {
        let (actor, name) = &users[rng.random_range(0..users.len())];
        let payload = if posts.is_empty() || i.is_multiple_of(20) {
            let post = PostId::new();
            posts.push(post);
            Payload::PostCreated(PostCreated {
                post_id: post.to_string(),
                title: format!("loop {i}"),
                audio_url: format!("https://cdn.example.com/replay/{i}.mp3"),
                bpm: f64::from(90 + rng.random_range(0..60u32)),
                key: "A minor".to_owned(),
                genres: vec!["house".to_owned()],
                duration_seconds: 16.0,
                ..Default::default()
            })
        } else if i % 20 <= 2 {
            let (target, _) = &users[rng.random_range(0..users.len())];
            Payload::Follow(Follow {
                target_user_id: target.to_string(),
            })
        } else {
            Payload::Like(Like {
                post_id: posts[rng.random_range(0..posts.len())].to_string(),
                ..Default::default()
            })
        };
        events.push(NewEvent::new(EventId::new(), *actor, name, payload));
        i += 1;
    }
    events
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use sidechain_events::EventKind;

    use super::*;

    #[test]
    fn likes_are_distinct_pairs() {
        let likes = likes(1000);
        assert_eq!(likes.len(), 1000);
        let pairs: HashSet<(String, String)> = likes
            .iter()
            .map(|e| {
                let Some(Payload::Like(like)) = &e.event.payload else {
                    panic!("not a like");
                };
                (e.event.actor_user_id.clone(), like.post_id.clone())
            })
            .collect();
        assert_eq!(pairs.len(), 1000);
    }

    #[test]
    fn a_history_registers_users_before_they_act() {
        let events = history(2000, 7);
        assert_eq!(events.len(), 2000);
        let registered = events
            .iter()
            .take_while(|e| e.kind == EventKind::UserRegistered)
            .count();
        assert_eq!(registered, 20);
        let count = |kind| events.iter().filter(|e| e.kind == kind).count();
        assert!(count(EventKind::PostCreated) >= 90);
        assert!(count(EventKind::Follow) >= 180);
        assert!(count(EventKind::Like) >= 1500);
    }
}
