//! Turning accepted writes into events: ids (fresh, or derived from the client's
//! `Idempotency-Key`), publishing with the stream's acknowledgement, and publish metrics.
//!
//! The edge answers 2xx only after JetStream acknowledged the event; a failed publish becomes a
//! 503 with `Retry-After`, never a success for something that was not stored.

use std::time::Instant;

use async_nats::jetstream;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use sidechain_events::events::event::Payload;
use sidechain_events::{EventId, EventKind, NewEvent, UserId};
use sidechain_infra::nats::{self, PublishError, Stored};

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

/// An event the stream acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// Its id.
    pub event_id: EventId,
    /// The client action it records ([`action_name`]).
    pub action: &'static str,
}

/// Why an event was not stored. Nothing was written; the same request may be retried.
#[derive(Debug, thiserror::Error)]
#[error("event not stored: {0}")]
pub struct NotStored(#[from] PublishError);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PublishLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// Publishes events to the `EVENTS` stream.
#[derive(Debug, Clone)]
pub struct EventPublisher {
    js: jetstream::Context,
    published: Family<PublishLabels, Counter>,
    duration: Family<KindLabels, Histogram>,
}

impl EventPublisher {
    /// A publisher on `js`; registers its metrics.
    pub fn new(js: jetstream::Context, registry: &mut Registry) -> Self {
        let published = Family::<PublishLabels, Counter>::default();
        let duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(sidechain_telemetry::metrics::latency_buckets())
        });
        registry.register(
            "events_published",
            "Events published to JetStream, by kind and outcome (stored|duplicate|unavailable|rejected)",
            published.clone(),
        );
        registry.register_with_unit(
            "event_publish_duration",
            "Time from publish to JetStream acknowledgement, by event kind",
            Unit::Seconds,
            duration.clone(),
        );
        Self {
            js,
            published,
            duration,
        }
    }

    /// Stores `payload` as an event by `actor`, its id derived from `key`, and waits for the
    /// acknowledgement.
    pub async fn record(
        &self,
        key: &IdempotencyKey,
        actor: UserId,
        actor_username: &str,
        payload: Payload,
    ) -> Result<Recorded, NotStored> {
        let kind = EventKind::of(&payload);
        let event_id = key.event_id(actor, kind);
        self.publish(event_id, actor, actor_username, payload)
            .await?;
        Ok(Recorded {
            event_id,
            action: action_name(kind),
        })
    }

    /// Stores `payload` as an event by `actor` and waits for the acknowledgement.
    pub async fn publish(
        &self,
        id: EventId,
        actor: UserId,
        actor_username: &str,
        payload: Payload,
    ) -> Result<Stored, NotStored> {
        let event = NewEvent::new(id, actor, actor_username, payload);
        let kind = event.kind.as_str();
        let span = tracing::info_span!(
            "events publish",
            otel.name = %format!("publish {}", event.subject()),
            otel.kind = "producer",
            messaging.system = "nats",
            messaging.operation.type = "publish",
            messaging.destination.name = %event.subject(),
            messaging.message.id = %event.id,
        );
        let started = Instant::now();
        let result = {
            use tracing::Instrument as _;
            nats::publish_event(&self.js, &event).instrument(span).await
        };
        self.duration
            .get_or_create(&KindLabels { kind })
            .observe(started.elapsed().as_secs_f64());
        let outcome = match &result {
            Ok(stored) if stored.duplicate => "duplicate",
            Ok(_) => "stored",
            Err(PublishError::Unavailable(_)) => "unavailable",
            Err(PublishError::Rejected(_)) => "rejected",
        };
        self.published
            .get_or_create(&PublishLabels { kind, outcome })
            .inc();
        match result {
            Ok(stored) => {
                tracing::debug!(event_id = %event.id, kind, sequence = stored.sequence, duplicate = stored.duplicate, "event stored");
                Ok(stored)
            }
            Err(err) => {
                tracing::warn!(event_id = %event.id, kind, error = %err, "event not stored");
                Err(NotStored(err))
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
}
