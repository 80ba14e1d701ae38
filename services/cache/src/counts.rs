//! The counters of a post, listed once: their field in the `post:{P}` hash and their place in
//! the `PostCounts` message served to the edge.

use sidechain_events::rpc::PostCounts;

/// One counter of a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Count {
    /// Users who like the post (kept equal to the size of `post_likes:{P}`).
    Likes,
    /// Plays.
    Plays,
    /// Comments.
    Comments,
    /// Users who reposted it (kept equal to the size of `post_reposts:{P}`).
    Reposts,
    /// Views.
    Views,
    /// Downloads.
    Downloads,
}

impl Count {
    /// Every counter.
    pub const ALL: [Count; 6] = [
        Count::Likes,
        Count::Plays,
        Count::Comments,
        Count::Reposts,
        Count::Views,
        Count::Downloads,
    ];

    /// Its field in the post hash.
    pub const fn field(self) -> &'static str {
        match self {
            Count::Likes => "likes",
            Count::Plays => "plays",
            Count::Comments => "comments",
            Count::Reposts => "reposts",
            Count::Views => "views",
            Count::Downloads => "downloads",
        }
    }

    /// Its place in `counts`.
    pub fn slot(self, counts: &mut PostCounts) -> &mut u64 {
        match self {
            Count::Likes => &mut counts.likes,
            Count::Plays => &mut counts.plays,
            Count::Comments => &mut counts.comments,
            Count::Reposts => &mut counts.reposts,
            Count::Views => &mut counts.views,
            Count::Downloads => &mut counts.downloads,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn each_counter_has_its_own_field_and_slot() {
        let fields: HashSet<_> = Count::ALL.iter().map(|c| c.field()).collect();
        assert_eq!(fields.len(), Count::ALL.len());

        let mut counts = PostCounts::default();
        for (n, count) in (1..).zip(Count::ALL) {
            *count.slot(&mut counts) = n;
        }
        let expected = PostCounts {
            likes: 1,
            plays: 2,
            comments: 3,
            reposts: 4,
            views: 5,
            downloads: 6,
        };
        assert_eq!(counts, expected);
    }
}
