//! Newtype ids. Every id in the system is a UUID; the type says what it points at, so a post id
//! cannot be passed where a user id is expected.

use std::fmt;
use std::str::FromStr;

/// The text was not a UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid UUID")]
pub struct IdParseError;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// A new time-ordered id (UUID v7).
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7())
            }

            /// Wraps an existing UUID.
            pub const fn from_uuid(uuid: uuid::Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying UUID.
            pub const fn as_uuid(&self) -> &uuid::Uuid {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Lower-case hyphenated form: the one form used in keys, subjects and JSON.
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                uuid::Uuid::try_parse(s).map(Self).map_err(|_| IdParseError)
            }
        }
    };
}

uuid_id!(
    /// A user account.
    UserId
);
uuid_id!(
    /// A post (a shared loop).
    PostId
);
uuid_id!(
    /// A comment on a post.
    CommentId
);
uuid_id!(
    /// An event; also its JetStream `Nats-Msg-Id`.
    EventId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_their_text_form() {
        let id = PostId::new();
        let parsed: PostId = id.to_string().parse().expect("own output parses");
        assert_eq!(parsed, id);
    }

    #[test]
    fn ids_reject_text_that_is_not_a_uuid() {
        assert_eq!("not-a-uuid".parse::<UserId>(), Err(IdParseError));
        assert_eq!("".parse::<UserId>(), Err(IdParseError));
    }

    #[test]
    fn ids_render_lower_case_hyphenated_whatever_the_input_form() {
        let id: UserId = "6BA7B8109DAD11D180B400C04FD430C8"
            .parse()
            .expect("simple form");
        assert_eq!(id.to_string(), "6ba7b810-9dad-11d1-80b4-00c04fd430c8");
    }
}
