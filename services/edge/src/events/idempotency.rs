//! `Idempotency-Key`: the ids derived from a client's key, and the binding of a key to the
//! request it was first used with.
//!
//! A retry with the same key and the same request maps onto the same event id, which JetStream
//! stores once. The same key sent with a different request (another body, another target,
//! another action) would map onto that id too and be silently dropped as a duplicate; the
//! binding turns that into a refusal instead: the first use of a key stores a fingerprint of
//! its request in the NATS KV bucket `idempotency` (entries expire with the stream's duplicate
//! window), and a later use with another fingerprint is [`BindError::Reused`].

use std::sync::Arc;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use prost::Message as _;
use sha2::{Digest as _, Sha256};
use sidechain_events::events::{Event, event::Payload};
use sidechain_events::{EventId, EventKind, UserId};
use tokio::sync::OnceCell;

/// Namespace of ids derived from idempotency keys (UUID v5).
const IDEMPOTENCY_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x5d1e_c4a1_7a1e_4b8e_9c0f_1d2e_3f4a_5b6c);

/// The name of the client action that produces events of `kind`, as answered in
/// `ActionResponse.action` and mixed into every id derived from an `Idempotency-Key`.
///
/// These names are part of stored ids: changing one would make a retry after a deploy store
/// its event twice. `the_derived_ids_are_stable` pins them.
pub const fn action_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::UserRegistered => "register",
        EventKind::PostCreated => "create_post",
        EventKind::PostDeleted => "delete_post",
        EventKind::AudioUploaded => "upload_audio",
        other => other.as_str(),
    }
}

/// The client's `Idempotency-Key`: a client retrying a write with the same key gets the same
/// event id (and the same new post or comment id), so the stream stores it once as long as the
/// retry comes within the stream's duplicate window (`EVENTS_DUPLICATE_WINDOW`, 2 min).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdempotencyKey(Option<String>);

/// A key that is not 1–255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Idempotency-Key must be 1–255 visible ASCII characters")]
pub struct InvalidIdempotencyKey;

impl IdempotencyKey {
    /// No key: every id is fresh.
    pub const NONE: Self = Self(None);

    /// A key as the client sent it.
    pub fn parse(key: &str) -> Result<Self, InvalidIdempotencyKey> {
        let valid = (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic());
        valid
            .then(|| Self(Some(key.to_owned())))
            .ok_or(InvalidIdempotencyKey)
    }

    /// The key narrowed to one target, for an action whose payload does not name what makes
    /// it distinct (a logout: the token it ends), so the same key can't merge two such events.
    pub fn for_target(&self, target: &str) -> Self {
        Self(self.0.as_ref().map(|key| format!("{key}/{target}")))
    }

    /// Id of the event of `kind` by `actor`.
    pub fn event_id(&self, actor: UserId, kind: EventKind) -> EventId {
        EventId::from_uuid(self.derive(actor, kind, "event"))
    }

    /// Id of the entity (`post`, `comment`) created by the event of `kind`.
    pub fn entity_id(&self, actor: UserId, kind: EventKind, entity: &str) -> uuid::Uuid {
        self.derive(actor, kind, entity)
    }

    fn derive(&self, actor: UserId, kind: EventKind, what: &str) -> uuid::Uuid {
        match &self.0 {
            Some(key) => uuid::Uuid::new_v5(
                &IDEMPOTENCY_NAMESPACE,
                format!("{actor}/{}/{key}/{what}", action_name(kind)).as_bytes(),
            ),
            None => uuid::Uuid::now_v7(),
        }
    }
}

/// Why a key could not be bound to this request.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The key was used for a different request within the duplicate window.
    #[error("the Idempotency-Key was already used for a different request")]
    Reused,
    /// The bucket could not be reached (NATS is down: the event could not be stored either).
    #[error("idempotency bucket unavailable: {0}")]
    Unavailable(String),
}

/// The KV bucket that remembers which request each key was first used with.
pub const BUCKET: &str = sidechain_events::subjects::IDEMPOTENCY_BUCKET;

/// Binds keys to requests in the `idempotency` bucket, opened (or created) on first use.
#[derive(Debug, Clone)]
pub struct KeyBindings {
    js: jetstream::Context,
    bucket: Arc<OnceCell<kv::Store>>,
}

impl KeyBindings {
    /// Bindings in the bucket of `js` (created by provisioning, entries kept for the stream's
    /// duplicate window).
    pub fn new(js: jetstream::Context) -> Self {
        Self {
            js,
            bucket: Arc::default(),
        }
    }

    /// Binds `key` to the event `payload` by `actor`, or checks it is bound to the same one.
    /// Without a key there is nothing to bind.
    pub async fn bind(
        &self,
        key: &IdempotencyKey,
        actor: UserId,
        payload: &Payload,
    ) -> Result<(), BindError> {
        let Some(text) = &key.0 else {
            return Ok(());
        };
        let entry = hex::encode(Sha256::digest(format!("{actor}/{text}")));
        let fingerprint = fingerprint(payload);
        let unavailable = |err: &dyn std::fmt::Display| BindError::Unavailable(err.to_string());
        let kv = self
            .bucket
            .get_or_try_init(|| sidechain_infra::nats::open_kv_bucket(&self.js, BUCKET))
            .await
            .map_err(|err| unavailable(&err))?;
        match kv.create(&entry, fingerprint.clone()).await {
            Ok(_) => return Ok(()),
            Err(err) if err.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(err) => return Err(unavailable(&err)),
        }
        match kv.get(&entry).await.map_err(|err| unavailable(&err))? {
            Some(stored) if stored != fingerprint => Err(BindError::Reused),
            // The same request again, or a binding that expired in between: a retry.
            _ => Ok(()),
        }
    }
}

/// What identifies a request: its action and everything it asks to store (ids derived from
/// the key included, so the fingerprint is the same on every retry).
fn fingerprint(payload: &Payload) -> Bytes {
    let request = Event {
        payload: Some(payload.clone()),
        ..Event::default()
    };
    Bytes::copy_from_slice(&Sha256::digest(request.encode_to_vec()))
}

#[cfg(test)]
mod tests {
    use sidechain_events::events::{Like, Logout};

    use super::*;

    fn key(text: &str) -> IdempotencyKey {
        IdempotencyKey::parse(text).expect("valid key")
    }

    #[test]
    fn the_same_key_gives_the_same_ids_and_different_keys_or_kinds_do_not() {
        let actor = UserId::new();
        let abc = key("abc");
        assert_eq!(
            abc.event_id(actor, EventKind::Like),
            abc.event_id(actor, EventKind::Like)
        );
        assert_ne!(
            abc.event_id(actor, EventKind::Like),
            abc.event_id(actor, EventKind::Unlike)
        );
        assert_ne!(
            abc.event_id(actor, EventKind::Like),
            key("abd").event_id(actor, EventKind::Like)
        );
        assert_ne!(
            abc.event_id(actor, EventKind::Like),
            abc.event_id(UserId::new(), EventKind::Like)
        );
    }

    #[test]
    fn without_a_key_every_id_is_fresh() {
        let actor = UserId::new();
        let none = IdempotencyKey::NONE;
        assert_ne!(
            none.event_id(actor, EventKind::Like),
            none.event_id(actor, EventKind::Like)
        );
    }

    /// Ids derived before the action names came from the event kind were
    /// `v5(namespace, "{actor}/{action}/{key}/{what}")` with the names each handler spelled
    /// out. A retry across the deploy must still map onto the same event.
    #[test]
    fn the_derived_ids_are_stable() {
        let actor: UserId = "0190c0de-0000-7000-8000-000000000001"
            .parse()
            .expect("user id");
        let retry = key("retry-1");
        let spelled_out = [
            (EventKind::PostCreated, "create_post"),
            (EventKind::PostDeleted, "delete_post"),
            (EventKind::Like, "like"),
            (EventKind::Unlike, "unlike"),
            (EventKind::Play, "play"),
            (EventKind::View, "view"),
            (EventKind::Download, "download"),
            (EventKind::Repost, "repost"),
            (EventKind::Unrepost, "unrepost"),
            (EventKind::Comment, "comment"),
            (EventKind::Follow, "follow"),
            (EventKind::Unfollow, "unfollow"),
            (EventKind::Logout, "logout"),
        ];
        for (kind, old_name) in spelled_out {
            let old = |what: &str| {
                uuid::Uuid::new_v5(
                    &IDEMPOTENCY_NAMESPACE,
                    format!("{actor}/{old_name}/retry-1/{what}").as_bytes(),
                )
            };
            assert_eq!(
                *retry.event_id(actor, kind).as_uuid(),
                old("event"),
                "{kind}"
            );
            assert_eq!(retry.entity_id(actor, kind, "post"), old("post"), "{kind}");
        }
        // And one literal value, so a change of namespace or format is caught too.
        assert_eq!(
            retry.event_id(actor, EventKind::Like).to_string(),
            "01ad6fd7-e011-51f6-b3cb-317fe5f06cd2"
        );
    }

    #[test]
    fn keys_are_one_to_255_visible_ascii_characters() {
        assert!(IdempotencyKey::parse("a").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        for bad in ["", "has space", "tab\t", "é", &"k".repeat(256)] {
            assert_eq!(
                IdempotencyKey::parse(bad),
                Err(InvalidIdempotencyKey),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_fingerprint_follows_the_request() {
        let like = |post: &str, emoji: &str| {
            Payload::Like(Like {
                post_id: post.into(),
                emoji: emoji.into(),
            })
        };
        assert_eq!(fingerprint(&like("p1", "")), fingerprint(&like("p1", "")));
        assert_ne!(fingerprint(&like("p1", "")), fingerprint(&like("p2", "")));
        assert_ne!(fingerprint(&like("p1", "")), fingerprint(&like("p1", "🔥")));
        let logout = |token: &str| {
            Payload::Logout(Logout {
                token_id: token.into(),
                ..Logout::default()
            })
        };
        assert_ne!(fingerprint(&logout("a")), fingerprint(&logout("b")));
    }
}
