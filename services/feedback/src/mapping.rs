//! What each event means to Gorse (documented in docs/events.md, "Feedback mapping").
//!
//! | event | Gorse |
//! |---|---|
//! | like | feedback `like` |
//! | play, completed | feedback `like` (a loop played to the end is liked) |
//! | play, partial | feedback `view` (read type) |
//! | view / download / comment / repost | feedback `view` / `download` / `comment` / `repost` |
//! | follow | feedback `follow` on the item `user:<target>` |
//! | unlike / unrepost / unfollow | delete that feedback |
//! | post created | upsert the item: categories = genres + `bpm_<tens>` + `key_<key>`, labels = genres, bpm, key |
//! | post deleted | delete the item |
//! | user registered | upsert the user, and a hidden item `user:<id>` that follows point at |
//! | logout | nothing |

use chrono::{TimeZone as _, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sidechain_events::DecodedEvent;
use sidechain_events::events::PostCreated;
use sidechain_events::events::event::Payload;
use sidechain_gorse::{Feedback, Item, User};

/// Feedback types, as configured in `compose/gorse/config.toml`.
pub mod feedback_type {
    /// Positive.
    pub const LIKE: &str = "like";
    /// Read (seen, not necessarily liked).
    pub const VIEW: &str = "view";
    /// Positive.
    pub const DOWNLOAD: &str = "download";
    /// Positive.
    pub const COMMENT: &str = "comment";
    /// Positive.
    pub const REPOST: &str = "repost";
    /// Positive, on `user:<id>` items.
    pub const FOLLOW: &str = "follow";
}

/// One change to make in Gorse. Serialised into the dead-letter list, so variants are only
/// ever added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum GorseOp {
    /// `PUT /api/feedback`.
    UpsertFeedback(Feedback),
    /// `DELETE /api/feedback/{type}/{user}/{item}`.
    DeleteFeedback {
        /// Feedback type.
        feedback_type: String,
        /// User id.
        user_id: String,
        /// Item id.
        item_id: String,
    },
    /// `POST /api/items`.
    UpsertItem(Item),
    /// `DELETE /api/item/{id}`.
    DeleteItem {
        /// Item id.
        item_id: String,
    },
    /// `POST /api/users`.
    UpsertUser(User),
}

/// What an operation is about: two operations with the same key in one batch are the same
/// row, and the later one wins (a like then an unlike leaves no like).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OpKey {
    /// A feedback row.
    Feedback(String, String, String),
    /// An item.
    Item(String),
    /// A user.
    User(String),
}

impl GorseOp {
    /// The row this operation writes.
    pub fn key(&self) -> OpKey {
        match self {
            GorseOp::UpsertFeedback(f) => OpKey::Feedback(
                f.feedback_type.clone(),
                f.user_id.clone(),
                f.item_id.clone(),
            ),
            GorseOp::DeleteFeedback {
                feedback_type,
                user_id,
                item_id,
            } => OpKey::Feedback(feedback_type.clone(), user_id.clone(), item_id.clone()),
            GorseOp::UpsertItem(item) => OpKey::Item(item.item_id.clone()),
            GorseOp::DeleteItem { item_id } => OpKey::Item(item_id.clone()),
            GorseOp::UpsertUser(user) => OpKey::User(user.user_id.clone()),
        }
    }
}

/// The item id that follow feedback points at.
pub fn user_item(user_id: &str) -> String {
    format!("user:{user_id}")
}

/// The item written before feedback on an item Gorse does not have (a post from before Gorse,
/// an item upsert that was parked): Gorse with `auto_insert_item = false` drops such feedback.
/// Hidden, so something we know nothing about is never recommended; the post's own upsert
/// (replay, backfill) overwrites it with its categories and makes it visible. A follow item
/// (`user:<id>`) is fully known from its id, so its placeholder is the real item.
pub fn placeholder_item(item_id: &str, timestamp: &str) -> Item {
    let is_user = item_id.starts_with("user:");
    Item {
        item_id: item_id.to_owned(),
        is_hidden: true,
        categories: if is_user {
            vec!["user".to_owned()]
        } else {
            Vec::new()
        },
        labels: json!([]),
        timestamp: timestamp.to_owned(),
        comment: String::new(),
    }
}

/// `ms` since the epoch as Gorse's RFC 3339 timestamp.
pub fn rfc3339(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Tempo bucket of a post: tens of BPM (`bpm_120` for 120–129.9).
pub fn bpm_category(bpm: f64) -> String {
    let tens = (bpm.max(0.0) / 10.0).floor() as u32 * 10;
    format!("bpm_{tens}")
}

/// Key category: lower case, spaces as `_` (`C minor` → `key_c_minor`).
pub fn key_category(key: &str) -> String {
    let key: String = key
        .trim()
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join("_");
    format!("key_{key}")
}

/// `labels` if Gorse accepts them, else none: Gorse answers 400 to a whole request for one
/// row with invalid labels, and a post is still worth recommending without them.
fn checked_labels(labels: serde_json::Value) -> serde_json::Value {
    match sidechain_gorse::validate_labels(&labels) {
        Ok(()) => labels,
        Err(why) => {
            tracing::warn!(error = why, "labels Gorse would refuse; sending none");
            serde_json::Value::Null
        }
    }
}

/// The Gorse item of a post: what `post_created` writes, and what the reconciliation writes
/// from the read models (`crate::reconcile`) — one function, so both are the same row.
pub fn post_item(post: &PostCreated, timestamp: String) -> Item {
    let mut categories = post.genres.clone();
    categories.push(bpm_category(post.bpm));
    categories.push(key_category(&post.key));
    Item {
        item_id: post.post_id.clone(),
        is_hidden: false,
        categories,
        labels: checked_labels(json!({ "genres": post.genres, "bpm": post.bpm, "key": post.key })),
        timestamp,
        comment: post.title.clone(),
    }
}

/// The Gorse operations an event stands for (none for events Gorse does not care about).
pub fn operations(event: &DecodedEvent) -> Vec<GorseOp> {
    let user = event.actor().to_string();
    let timestamp = rfc3339(event.occurred_at_ms());
    let feedback = |kind: &str, item: &str| {
        GorseOp::UpsertFeedback(Feedback {
            feedback_type: kind.to_owned(),
            user_id: user.clone(),
            item_id: item.to_owned(),
            value: 1.0,
            timestamp: timestamp.clone(),
            comment: String::new(),
        })
    };
    let forget = |kind: &str, item: &str| GorseOp::DeleteFeedback {
        feedback_type: kind.to_owned(),
        user_id: user.clone(),
        item_id: item.to_owned(),
    };
    match event.payload() {
        Payload::Like(like) => vec![feedback(feedback_type::LIKE, &like.post_id)],
        Payload::Unlike(unlike) => vec![forget(feedback_type::LIKE, &unlike.post_id)],
        Payload::Play(play) if play.completed => vec![feedback(feedback_type::LIKE, &play.post_id)],
        Payload::Play(play) => vec![feedback(feedback_type::VIEW, &play.post_id)],
        Payload::View(view) => vec![feedback(feedback_type::VIEW, &view.post_id)],
        // A loop heard (almost) to the end is liked, as a completed play is; a shorter listen
        // is read-type feedback.
        Payload::Listen(listen) if listen.completed => {
            vec![feedback(feedback_type::LIKE, &listen.post_id)]
        }
        Payload::Listen(listen) => vec![feedback(feedback_type::VIEW, &listen.post_id)],
        // Opening a recommended post says it was worth a look, not that it was liked.
        Payload::RecommendationClick(click) => {
            vec![feedback(feedback_type::VIEW, &click.post_id)]
        }
        Payload::Download(download) => vec![feedback(feedback_type::DOWNLOAD, &download.post_id)],
        Payload::Comment(comment) => vec![feedback(feedback_type::COMMENT, &comment.post_id)],
        Payload::Repost(repost) => vec![feedback(feedback_type::REPOST, &repost.post_id)],
        Payload::Unrepost(unrepost) => vec![forget(feedback_type::REPOST, &unrepost.post_id)],
        Payload::Follow(follow) => {
            vec![feedback(
                feedback_type::FOLLOW,
                &user_item(&follow.target_user_id),
            )]
        }
        Payload::Unfollow(unfollow) => {
            vec![forget(
                feedback_type::FOLLOW,
                &user_item(&unfollow.target_user_id),
            )]
        }
        Payload::PostCreated(post) => vec![GorseOp::UpsertItem(post_item(post, timestamp))],
        Payload::PostDeleted(deleted) => vec![GorseOp::DeleteItem {
            item_id: deleted.post_id.clone(),
        }],
        Payload::UserRegistered(registered) => vec![
            GorseOp::UpsertUser(User {
                user_id: registered.user_id.clone(),
                labels: json!([]),
                comment: String::new(),
            }),
            // Follows are feedback on this item; hidden so it is never recommended as a post.
            GorseOp::UpsertItem(placeholder_item(
                &user_item(&registered.user_id),
                &timestamp,
            )),
        ],
        // The post itself comes with the `post_created` published beside an upload.
        // A file that could not be used takes its post out of recommendations.
        Payload::AudioRejected(rejected) => vec![GorseOp::DeleteItem {
            item_id: rejected.post_id.clone(),
        }],
        Payload::Logout(_)
        | Payload::SessionsEnded(_)
        | Payload::AudioUploaded(_)
        | Payload::AudioProcessed(_)
        | Payload::ProfileUpdated(_)
        | Payload::UsernameChanged(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;
    use sidechain_events::events::{Like, Listen, Logout, Play, PostCreated, RecommendationClick};
    use sidechain_events::{EventId, NewEvent, UserId, decode_event};

    fn decoded(payload: Payload) -> DecodedEvent {
        let event = NewEvent::new(EventId::new(), UserId::new(), "u", payload);
        decode_event(&event.event.encode_to_vec()).expect("decodes")
    }

    fn single_feedback(ops: &[GorseOp]) -> &Feedback {
        match ops {
            [GorseOp::UpsertFeedback(f)] => f,
            other => panic!("expected one feedback, got {other:?}"),
        }
    }

    #[test]
    fn a_completed_play_is_a_like_and_a_partial_one_a_view() {
        let play = |completed| {
            Payload::Play(Play {
                post_id: "p".into(),
                duration_seconds: 3.0,
                completed,
            })
        };
        assert_eq!(
            single_feedback(&operations(&decoded(play(true)))).feedback_type,
            "like"
        );
        assert_eq!(
            single_feedback(&operations(&decoded(play(false)))).feedback_type,
            "view"
        );
    }

    #[test]
    fn a_completed_listen_is_a_like_a_short_one_and_a_click_are_views() {
        let listen = |completed| {
            Payload::Listen(Listen {
                post_id: "p".into(),
                duration_seconds: 12.0,
                completed,
            })
        };
        let click = Payload::RecommendationClick(RecommendationClick {
            post_id: "p".into(),
            source: "for_you".into(),
            position: 3,
            completed: true,
            play_duration_seconds: 0.0,
        });
        for (payload, expected) in [
            (listen(true), "like"),
            (listen(false), "view"),
            (click, "view"),
        ] {
            let ops = operations(&decoded(payload));
            let feedback = single_feedback(&ops);
            assert_eq!(feedback.feedback_type, expected);
            assert_eq!(feedback.item_id, "p");
        }
    }

    #[test]
    fn a_like_becomes_like_feedback_from_the_actor() {
        let event = decoded(Payload::Like(Like {
            post_id: "p1".into(),
            emoji: String::new(),
        }));
        let feedback = single_feedback(&operations(&event)).clone();
        assert_eq!(feedback.user_id, event.actor().to_string());
        assert_eq!(feedback.item_id, "p1");
        assert!(feedback.timestamp.ends_with('Z'));
    }

    #[test]
    fn a_post_becomes_an_item_with_genre_tempo_and_key_categories() {
        let event = decoded(Payload::PostCreated(PostCreated {
            post_id: "p1".into(),
            title: "Night drive".into(),
            bpm: 124.5,
            key: "C minor".into(),
            genres: vec!["techno".into(), "house".into()],
            ..Default::default()
        }));
        let ops = operations(&event);
        let [GorseOp::UpsertItem(item)] = ops.as_slice() else {
            panic!("expected an item");
        };
        assert_eq!(
            item.categories,
            vec!["techno", "house", "bpm_120", "key_c_minor"]
        );
        assert_eq!(item.labels["bpm"], 124.5);
        assert!(!item.is_hidden);
    }

    #[test]
    fn labels_gorse_would_refuse_are_dropped_and_valid_ones_kept() {
        let valid = json!({"genres": ["house"], "bpm": 124.5, "key": "Am"});
        assert_eq!(checked_labels(valid.clone()), valid);
        for bad in [json!({"explicit": true}), json!({"genres": ["house", 1]})] {
            assert_eq!(checked_labels(bad), serde_json::Value::Null);
        }
    }

    #[test]
    fn logout_means_nothing_to_gorse() {
        assert!(operations(&decoded(Payload::Logout(Logout::default()))).is_empty());
    }

    #[test]
    fn a_like_and_an_unlike_have_the_same_key() {
        let like = operations(&decoded(Payload::Like(Like {
            post_id: "p".into(),
            emoji: String::new(),
        })));
        let mut unlike = operations(&decoded(Payload::Unlike(
            sidechain_events::events::Unlike {
                post_id: "p".into(),
            },
        )));
        // Same user for both.
        if let (GorseOp::UpsertFeedback(f), GorseOp::DeleteFeedback { user_id, .. }) =
            (&like[0], &mut unlike[0])
        {
            *user_id = f.user_id.clone();
        }
        assert_eq!(like[0].key(), unlike[0].key());
    }

    #[test]
    fn operations_survive_the_dead_letter_list_format() {
        let event = decoded(Payload::Like(Like {
            post_id: "p1".into(),
            emoji: String::new(),
        }));
        let ops = operations(&event);
        let json = serde_json::to_string(&ops).expect("json");
        assert!(json.contains(r#""op":"upsert_feedback""#), "{json}");
        let back: Vec<GorseOp> = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, ops);
    }
}
