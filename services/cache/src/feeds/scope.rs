//! Page scopes: what a cached page depends on. A scope's text form (`timeline:<user>`,
//! `trending`, …) names its Redis hash `page:<scope>` and travels in `cache.invalidate`
//! broadcasts; [`Scope`]'s `Display` and `FromStr` are the only spelling of it.

use std::fmt;
use std::str::FromStr;

use sidechain_events::UserId;

/// Between a scope's feed and its user id.
const SEPARATOR: char = ':';

/// The feed a scope belongs to: the first part of the scope's text form and its metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feed {
    /// A viewer's timeline.
    Timeline,
    /// A viewer's unified feed.
    Unified,
    /// A viewer's recommendations.
    ForYou,
    /// A user's posts.
    User,
    /// Trending.
    Trending,
}

impl Feed {
    /// Every feed.
    pub const ALL: [Feed; 5] = [
        Feed::Timeline,
        Feed::Unified,
        Feed::ForYou,
        Feed::User,
        Feed::Trending,
    ];

    /// Its name, in scopes and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Feed::Timeline => "timeline",
            Feed::Unified => "unified",
            Feed::ForYou => "for_you",
            Feed::User => "user",
            Feed::Trending => "trending",
        }
    }

    /// What precedes the user id in the text form of this feed's scopes (`timeline:`), for
    /// scripts that build the names themselves.
    pub fn scope_prefix(self) -> String {
        format!("{}{SEPARATOR}", self.as_str())
    }
}

/// What a cached page depends on; its text form names the Redis hash `page:<scope>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// A viewer's timeline.
    Timeline(UserId),
    /// A viewer's unified feed.
    Unified(UserId),
    /// A viewer's recommendations.
    ForYou(UserId),
    /// A user's posts (the same for every viewer).
    User(UserId),
    /// Trending (the same for everyone).
    Trending,
}

impl Scope {
    /// The scope of `feed` for `user`; `None` when the feed needs a user and none was given,
    /// or needs none and one was.
    pub fn of(feed: Feed, user: Option<UserId>) -> Option<Self> {
        match (feed, user) {
            (Feed::Timeline, Some(user)) => Some(Scope::Timeline(user)),
            (Feed::Unified, Some(user)) => Some(Scope::Unified(user)),
            (Feed::ForYou, Some(user)) => Some(Scope::ForYou(user)),
            (Feed::User, Some(user)) => Some(Scope::User(user)),
            (Feed::Trending, None) => Some(Scope::Trending),
            _ => None,
        }
    }

    /// Its feed.
    pub fn feed(&self) -> Feed {
        match self {
            Scope::Timeline(_) => Feed::Timeline,
            Scope::Unified(_) => Feed::Unified,
            Scope::ForYou(_) => Feed::ForYou,
            Scope::User(_) => Feed::User,
            Scope::Trending => Feed::Trending,
        }
    }

    /// Its user, for per-user scopes.
    pub fn user(&self) -> Option<UserId> {
        match *self {
            Scope::Timeline(user)
            | Scope::Unified(user)
            | Scope::ForYou(user)
            | Scope::User(user) => Some(user),
            Scope::Trending => None,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.user() {
            Some(user) => write!(f, "{}{user}", self.feed().scope_prefix()),
            None => f.write_str(self.feed().as_str()),
        }
    }
}

/// The text is not a page scope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a page scope: {0:?}")]
pub struct ScopeParseError(String);

impl FromStr for Scope {
    type Err = ScopeParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || ScopeParseError(text.to_owned());
        let (feed, user) = match text.split_once(SEPARATOR) {
            Some((feed, user)) => (feed, Some(user.parse().map_err(|_| invalid())?)),
            None => (text, None),
        };
        let feed = Feed::ALL
            .into_iter()
            .find(|f| f.as_str() == feed)
            .ok_or_else(invalid)?;
        Scope::of(feed, user).ok_or_else(invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scope_round_trips_through_its_text_form() {
        let user = UserId::new();
        for feed in Feed::ALL {
            let scope = Scope::of(feed, Some(user)).or(Scope::of(feed, None));
            let scope = scope.expect("each feed has a scope");
            assert_eq!(scope.to_string().parse::<Scope>(), Ok(scope), "{scope}");
            assert_eq!(scope.feed(), feed);
        }
    }

    #[test]
    fn scopes_are_spelled_as_page_hashes_and_broadcasts_expect() {
        let user = UserId::new();
        assert_eq!(
            Scope::Timeline(user).to_string(),
            format!("timeline:{user}")
        );
        assert_eq!(Scope::Unified(user).to_string(), format!("unified:{user}"));
        assert_eq!(Scope::ForYou(user).to_string(), format!("for_you:{user}"));
        assert_eq!(Scope::User(user).to_string(), format!("user:{user}"));
        assert_eq!(Scope::Trending.to_string(), "trending");
        assert_eq!(
            Scope::Timeline(user).to_string(),
            format!("{}{user}", Feed::Timeline.scope_prefix())
        );
    }

    #[test]
    fn text_that_is_not_a_scope_is_refused() {
        let user = UserId::new();
        for text in [
            String::new(),
            "timeline".to_owned(),
            "timeline:".to_owned(),
            "timeline:nope".to_owned(),
            format!("trending:{user}"),
            format!("friends:{user}"),
            format!("timeline:{user}:extra"),
        ] {
            assert!(text.parse::<Scope>().is_err(), "{text:?}");
        }
    }
}
