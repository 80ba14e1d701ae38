//! Turning accepted writes into events: ids (fresh, or derived from the client's
//! `Idempotency-Key`), publishing with the stream's acknowledgement, and publish metrics.
//!
//! The edge answers 2xx only after JetStream acknowledged the event; a failed publish becomes a
//! 503 with `Retry-After`, never a success for something that was not stored.

use std::time::Instant;

use async_nats::jetstream;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use sidechain_events::events::event::Payload;
use sidechain_events::{EventId, NewEvent, UserId};
use sidechain_infra::nats::{self, PublishError, Stored};

use crate::error::ApiError;

/// Namespace of ids derived from idempotency keys (UUID v5).
const IDEMPOTENCY_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x5d1e_c4a1_7a1e_4b8e_9c0f_1d2e_3f4a_5b6c);

/// The `Idempotency-Key` header: a client retrying a write with the same key gets the same
/// event id (and the same new post or comment id), so the stream stores it once as long as the
/// retry comes within the stream's duplicate window (`EVENTS_DUPLICATE_WINDOW`, 2 min).
#[derive(Debug, Clone, Default)]
pub struct IdempotencyKey(Option<String>);

impl IdempotencyKey {
    /// Id of the event `action` by `actor`.
    pub fn event_id(&self, actor: UserId, action: &str) -> EventId {
        EventId::from_uuid(self.derive(actor, action, "event"))
    }

    /// Id of the entity (`post`, `comment`) created by `action`.
    pub fn entity_id(&self, actor: UserId, action: &str, entity: &str) -> uuid::Uuid {
        self.derive(actor, action, entity)
    }

    fn derive(&self, actor: UserId, action: &str, what: &str) -> uuid::Uuid {
        match &self.0 {
            Some(key) => uuid::Uuid::new_v5(
                &IDEMPOTENCY_NAMESPACE,
                format!("{actor}/{action}/{key}/{what}").as_bytes(),
            ),
            None => uuid::Uuid::now_v7(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(Self(None));
        };
        let key = value
            .to_str()
            .ok()
            .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_idempotency_key",
                    "Idempotency-Key must be 1–255 visible ASCII characters",
                )
            })?;
        Ok(Self(Some(key.to_owned())))
    }
}

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

    /// Stores `payload` as an event by `actor` and waits for the acknowledgement.
    pub async fn publish(
        &self,
        id: EventId,
        actor: UserId,
        actor_username: &str,
        payload: Payload,
    ) -> Result<Stored, ApiError> {
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
                Err(ApiError::unavailable(
                    "event_store_unavailable",
                    "the change could not be recorded; retry shortly",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_key_gives_the_same_ids_and_different_keys_or_actions_do_not() {
        let actor = UserId::new();
        let key = IdempotencyKey(Some("abc".into()));
        assert_eq!(key.event_id(actor, "like"), key.event_id(actor, "like"));
        assert_ne!(key.event_id(actor, "like"), key.event_id(actor, "unlike"));
        assert_ne!(
            key.event_id(actor, "like"),
            IdempotencyKey(Some("abd".into())).event_id(actor, "like")
        );
        assert_ne!(
            key.event_id(actor, "like"),
            key.event_id(UserId::new(), "like")
        );
    }

    #[test]
    fn without_a_key_every_id_is_fresh() {
        let actor = UserId::new();
        let none = IdempotencyKey::default();
        assert_ne!(none.event_id(actor, "like"), none.event_id(actor, "like"));
    }
}
