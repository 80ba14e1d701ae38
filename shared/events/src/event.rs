//! The event envelope: building one, naming its kind and subject, and decoding one safely.

use prost::Message;

use crate::events::{Event, event::Payload};
use crate::ids::{EventId, UserId};

/// What an event records. Its `as_str` is the last token of the event's subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    UserRegistered,
    PostCreated,
    PostDeleted,
    Like,
    Unlike,
    Play,
    View,
    Download,
    Repost,
    Unrepost,
    Comment,
    Follow,
    Unfollow,
    Logout,
    SessionsEnded,
    ProfileUpdated,
    UsernameChanged,
    Listen,
    RecommendationClick,
    AudioUploaded,
    AudioProcessed,
    AudioRejected,
}

impl EventKind {
    /// Every kind, in schema order.
    pub const ALL: [EventKind; 22] = [
        EventKind::UserRegistered,
        EventKind::PostCreated,
        EventKind::PostDeleted,
        EventKind::Like,
        EventKind::Unlike,
        EventKind::Play,
        EventKind::View,
        EventKind::Download,
        EventKind::Repost,
        EventKind::Unrepost,
        EventKind::Comment,
        EventKind::Follow,
        EventKind::Unfollow,
        EventKind::Logout,
        EventKind::SessionsEnded,
        EventKind::ProfileUpdated,
        EventKind::UsernameChanged,
        EventKind::Listen,
        EventKind::RecommendationClick,
        EventKind::AudioUploaded,
        EventKind::AudioProcessed,
        EventKind::AudioRejected,
    ];

    /// The snake_case name, as used in subjects and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::UserRegistered => "user_registered",
            EventKind::PostCreated => "post_created",
            EventKind::PostDeleted => "post_deleted",
            EventKind::Like => "like",
            EventKind::Unlike => "unlike",
            EventKind::Play => "play",
            EventKind::View => "view",
            EventKind::Download => "download",
            EventKind::Repost => "repost",
            EventKind::Unrepost => "unrepost",
            EventKind::Comment => "comment",
            EventKind::Follow => "follow",
            EventKind::Unfollow => "unfollow",
            EventKind::Logout => "logout",
            EventKind::SessionsEnded => "sessions_ended",
            EventKind::ProfileUpdated => "profile_updated",
            EventKind::UsernameChanged => "username_changed",
            EventKind::Listen => "listen",
            EventKind::RecommendationClick => "recommendation_click",
            EventKind::AudioUploaded => "audio_uploaded",
            EventKind::AudioProcessed => "audio_processed",
            EventKind::AudioRejected => "audio_rejected",
        }
    }

    /// The kind of a payload.
    pub const fn of(payload: &Payload) -> Self {
        match payload {
            Payload::UserRegistered(_) => EventKind::UserRegistered,
            Payload::PostCreated(_) => EventKind::PostCreated,
            Payload::PostDeleted(_) => EventKind::PostDeleted,
            Payload::Like(_) => EventKind::Like,
            Payload::Unlike(_) => EventKind::Unlike,
            Payload::Play(_) => EventKind::Play,
            Payload::View(_) => EventKind::View,
            Payload::Download(_) => EventKind::Download,
            Payload::Repost(_) => EventKind::Repost,
            Payload::Unrepost(_) => EventKind::Unrepost,
            Payload::Comment(_) => EventKind::Comment,
            Payload::Follow(_) => EventKind::Follow,
            Payload::Unfollow(_) => EventKind::Unfollow,
            Payload::Logout(_) => EventKind::Logout,
            Payload::SessionsEnded(_) => EventKind::SessionsEnded,
            Payload::ProfileUpdated(_) => EventKind::ProfileUpdated,
            Payload::UsernameChanged(_) => EventKind::UsernameChanged,
            Payload::Listen(_) => EventKind::Listen,
            Payload::RecommendationClick(_) => EventKind::RecommendationClick,
            Payload::AudioUploaded(_) => EventKind::AudioUploaded,
            Payload::AudioProcessed(_) => EventKind::AudioProcessed,
            Payload::AudioRejected(_) => EventKind::AudioRejected,
        }
    }

    /// The subject events of this kind are published on: `events.<kind>`.
    pub fn subject(self) -> String {
        format!("{}{}", crate::subjects::EVENTS_PREFIX, self.as_str())
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// An event about to be published, with its id chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The envelope, ready to encode.
    pub event: Event,
    /// Its id, also used as the JetStream `Nats-Msg-Id`.
    pub id: EventId,
    /// Its kind, which names the subject.
    pub kind: EventKind,
}

impl NewEvent {
    /// Wraps `payload` in an envelope stamped now, with the given id.
    pub fn new(id: EventId, actor: UserId, actor_username: &str, payload: Payload) -> Self {
        let kind = EventKind::of(&payload);
        let event = Event {
            event_id: id.to_string(),
            occurred_at_ms: now_ms(),
            actor_user_id: actor.to_string(),
            actor_username: actor_username.to_owned(),
            payload: Some(payload),
        };
        Self { event, id, kind }
    }

    /// The protobuf bytes of the envelope.
    pub fn encode(&self) -> Vec<u8> {
        self.event.encode_to_vec()
    }

    /// The subject to publish on.
    pub fn subject(&self) -> String {
        self.kind.subject()
    }
}

/// Why bytes read from the stream are not a usable event.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// Not protobuf of the envelope's shape.
    #[error("malformed protobuf: {0}")]
    Malformed(#[from] prost::DecodeError),
    /// A well-formed envelope without a payload (or with one this build does not know).
    #[error("event has no payload")]
    MissingPayload,
    /// The envelope's ids are not UUIDs.
    #[error("event field {field} is not a UUID")]
    BadId {
        /// Which field.
        field: &'static str,
    },
}

/// An event read from the stream whose envelope was checked: ids well-formed, payload present.
///
/// The fields are private so the checks cannot be undone afterwards; the payload is held
/// outside the envelope, so there is no `Option` left to be `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedEvent {
    id: EventId,
    actor: UserId,
    actor_username: String,
    occurred_at_ms: i64,
    payload: Payload,
}

impl DecodedEvent {
    /// Checks an envelope: its payload must be present and its ids UUIDs.
    pub fn new(event: Event) -> Result<Self, DecodeError> {
        let Event {
            event_id,
            occurred_at_ms,
            actor_user_id,
            actor_username,
            payload,
        } = event;
        let payload = payload.ok_or(DecodeError::MissingPayload)?;
        let id = event_id
            .parse()
            .map_err(|_| DecodeError::BadId { field: "event_id" })?;
        let actor = actor_user_id.parse().map_err(|_| DecodeError::BadId {
            field: "actor_user_id",
        })?;
        Ok(Self {
            id,
            actor,
            actor_username,
            occurred_at_ms,
            payload,
        })
    }

    /// Its id.
    pub fn id(&self) -> EventId {
        self.id
    }

    /// Who did it.
    pub fn actor(&self) -> UserId {
        self.actor
    }

    /// The actor's username when it happened.
    pub fn actor_username(&self) -> &str {
        &self.actor_username
    }

    /// When it happened, in milliseconds since the Unix epoch.
    pub fn occurred_at_ms(&self) -> i64 {
        self.occurred_at_ms
    }

    /// What happened.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }

    /// Its kind (always that of the payload).
    pub fn kind(&self) -> EventKind {
        EventKind::of(&self.payload)
    }
}

impl TryFrom<Event> for DecodedEvent {
    type Error = DecodeError;

    fn try_from(event: Event) -> Result<Self, DecodeError> {
        Self::new(event)
    }
}

/// Decodes and checks an envelope read from the stream.
pub fn decode_event(bytes: &[u8]) -> Result<DecodedEvent, DecodeError> {
    DecodedEvent::new(Event::decode(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Like, Play};

    #[test]
    fn a_new_event_round_trips_and_names_its_subject() {
        let actor = UserId::new();
        let post = crate::ids::PostId::new();
        let new = NewEvent::new(
            EventId::new(),
            actor,
            "loopmaker",
            Payload::Play(Play {
                post_id: post.to_string(),
                duration_seconds: 12.5,
                completed: true,
            }),
        );
        assert_eq!(new.subject(), "events.play");

        let decoded = decode_event(&new.encode()).expect("decodes");
        assert_eq!(decoded.id(), new.id);
        assert_eq!(decoded.actor(), actor);
        assert_eq!(decoded.kind(), EventKind::Play);
        assert_eq!(decoded.actor_username(), new.event.actor_username);
        assert_eq!(decoded.occurred_at_ms(), new.event.occurred_at_ms);
        assert_eq!(Some(decoded.payload()), new.event.payload.as_ref());
    }

    #[test]
    fn a_checked_envelope_keeps_its_payload_and_names_its_kind() {
        let new = NewEvent::new(
            EventId::new(),
            UserId::new(),
            "loopmaker",
            Payload::Like(Like::default()),
        );
        let decoded = DecodedEvent::try_from(new.event.clone()).expect("valid envelope");
        assert_eq!(decoded.kind(), new.kind);
        assert_eq!(decoded.kind(), EventKind::of(decoded.payload()));
        assert_eq!(decoded, decode_event(&new.encode()).expect("decodes"));
    }

    #[test]
    fn a_bad_actor_id_is_rejected_before_use() {
        let event = Event {
            event_id: EventId::new().to_string(),
            actor_user_id: "someone".into(),
            payload: Some(Payload::Like(Like::default())),
            ..Default::default()
        };
        assert_eq!(
            DecodedEvent::new(event),
            Err(DecodeError::BadId {
                field: "actor_user_id"
            })
        );
    }

    #[test]
    fn an_envelope_without_payload_is_rejected() {
        let event = Event {
            event_id: EventId::new().to_string(),
            actor_user_id: UserId::new().to_string(),
            ..Default::default()
        };
        assert_eq!(
            decode_event(&event.encode_to_vec()),
            Err(DecodeError::MissingPayload)
        );
    }

    #[test]
    fn an_envelope_with_a_bad_id_is_rejected() {
        let event = Event {
            event_id: "nope".into(),
            actor_user_id: UserId::new().to_string(),
            payload: Some(Payload::Like(Like::default())),
            ..Default::default()
        };
        assert_eq!(
            decode_event(&event.encode_to_vec()),
            Err(DecodeError::BadId { field: "event_id" })
        );
    }

    #[test]
    fn every_kind_has_a_distinct_subject() {
        let subjects: std::collections::HashSet<_> =
            EventKind::ALL.iter().map(|k| k.subject()).collect();
        assert_eq!(subjects.len(), EventKind::ALL.len());
    }

    proptest::proptest! {
        // Whatever bytes arrive on the stream, decoding returns an error or an event; it never panics.
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode_event(&bytes);
        }
    }
}
