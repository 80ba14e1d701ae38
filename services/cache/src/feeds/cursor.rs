//! Cursors of the time-ordered feeds (timeline, a user's posts).
//!
//! An offset counts from the newest post, so a post arriving between two page reads shifts
//! every later page by one: the reader sees an item twice. A cursor names the last item served
//! (its time and id), and the next page is "strictly older than that", whatever arrived since.
//! Items are ordered by time, newest first, then by id, highest first (the order Redis gives
//! equal scores in `ZREVRANGE`), so two posts of the same millisecond are neither repeated nor
//! skipped.

use sidechain_events::PostId;

/// The last item a page served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// Its time (the score in the feed's sorted sets), ms since the epoch.
    pub at_ms: i64,
    /// Its id.
    pub post: PostId,
}

/// Version tag, so the format can change without misreading old cursors.
const VERSION: &str = "v1";

impl Cursor {
    /// The opaque text handed to clients.
    pub fn encode(&self) -> String {
        format!("{VERSION}.{}.{}", self.at_ms, self.post)
    }

    /// Reads a cursor made by [`Cursor::encode`]; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, '.');
        if parts.next()? != VERSION {
            return None;
        }
        let at_ms = parts.next()?.parse::<i64>().ok().filter(|ms| *ms >= 0)?;
        let post = parts.next()?.parse().ok()?;
        Some(Self { at_ms, post })
    }

    /// Whether an entry (`member` with `score`) comes after this cursor in feed order.
    pub fn is_before(&self, member: &str, score: f64) -> bool {
        let at = self.at_ms as f64;
        score < at || (score == at && member < self.post.to_string().as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_and_refuses_other_text() {
        let cursor = Cursor {
            at_ms: 1_733_300_000_123,
            post: PostId::new(),
        };
        assert_eq!(Cursor::parse(&cursor.encode()), Some(cursor));
        for bad in ["", "v1", "v1.12", "v2.12.x", "v1.-5.", "v1.abc.def"] {
            assert_eq!(Cursor::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn older_items_and_lower_ids_of_the_same_time_come_after() {
        let cursor = Cursor {
            at_ms: 100,
            post: "01900000-0000-7000-8000-000000000005".parse().expect("id"),
        };
        assert!(cursor.is_before("01900000-0000-7000-8000-000000000009", 99.0));
        assert!(cursor.is_before("01900000-0000-7000-8000-000000000004", 100.0));
        assert!(!cursor.is_before("01900000-0000-7000-8000-000000000005", 100.0));
        assert!(!cursor.is_before("01900000-0000-7000-8000-000000000006", 100.0));
        assert!(!cursor.is_before("01900000-0000-7000-8000-000000000001", 101.0));
    }
}
