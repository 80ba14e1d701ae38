//! Turning accepted writes into events: ids (fresh, or derived from the client's
//! `Idempotency-Key`, see [`idempotency`]), publishing with the stream's acknowledgement, and
//! publish metrics.
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

pub mod idempotency;

pub use idempotency::{BindError, IdempotencyKey, InvalidIdempotencyKey, KeyBindings, action_name};

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

/// Why a client's write was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The event store could not be reached: nothing was written; retry.
    #[error("event not stored: {0}")]
    NotStored(String),
    /// The `Idempotency-Key` belongs to another request: nothing was written.
    #[error("the Idempotency-Key was already used for a different request")]
    KeyReused,
}

impl From<NotStored> for RecordError {
    fn from(err: NotStored) -> Self {
        RecordError::NotStored(err.to_string())
    }
}

impl From<BindError> for RecordError {
    fn from(err: BindError) -> Self {
        match err {
            BindError::Reused => RecordError::KeyReused,
            BindError::Unavailable(reason) => RecordError::NotStored(reason),
        }
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
    bindings: KeyBindings,
    published: Family<PublishLabels, Counter>,
    duration: Family<KindLabels, Histogram>,
}

impl EventPublisher {
    /// A publisher on `js`, binding idempotency keys in `bindings`; registers its metrics.
    pub fn new(js: jetstream::Context, bindings: KeyBindings, registry: &mut Registry) -> Self {
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
            bindings,
            published,
            duration,
        }
    }

    /// Stores `payload` as an event by `actor`, its id derived from `key` (which must not have
    /// been used for another request), and waits for the acknowledgement.
    pub async fn record(
        &self,
        key: &IdempotencyKey,
        actor: UserId,
        actor_username: &str,
        payload: Payload,
    ) -> Result<Recorded, RecordError> {
        let kind = EventKind::of(&payload);
        self.bindings.bind(key, actor, &payload).await?;
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
