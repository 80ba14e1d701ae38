//! The vocabulary the Sidechain services share: the protobuf messages generated from `proto/`,
//! typed ids, the event envelope helpers and every NATS subject and bucket name.
//!
//! Nothing here does I/O; connecting and publishing live in `sidechain-infra`.

mod event;
mod ids;
pub mod subjects;

pub use event::{DecodeError, DecodedEvent, EventKind, NewEvent, decode_event, now_ms};
pub use ids::{CommentId, EventId, IdParseError, PostId, UserId};

/// Generated protobuf types. `v1` holds the events, `rpc` the request/reply messages.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod pb {
    /// Events stored in the `EVENTS` stream.
    pub mod events {
        #[allow(missing_docs, unreachable_pub)]
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/sidechain.events.v1.rs"));
        }
    }
    /// Request/reply and broadcast messages between services.
    pub mod rpc {
        #[allow(missing_docs, unreachable_pub)]
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/sidechain.rpc.v1.rs"));
        }
    }
}

pub use pb::events::v1 as events;
pub use pb::rpc::v1 as rpc;
