//! Orderings: the trending score, and the weighted mix of the unified feed.

use std::collections::HashSet;
use std::time::Duration;

use sidechain_events::PostId;
use sidechain_events::rpc::{ItemSource, PostCounts};

/// Engagement weights of the trending score.
pub mod weights {
    /// A like.
    pub const LIKE: f64 = 1.0;
    /// A repost (sharing is the strongest signal).
    pub const REPOST: f64 = 3.0;
    /// A comment.
    pub const COMMENT: f64 = 2.0;
    /// A download.
    pub const DOWNLOAD: f64 = 0.5;
    /// A play (cheap, so light).
    pub const PLAY: f64 = 0.1;
    /// Gravity of the time decay: score falls as (age in hours + 2) to this power.
    pub const GRAVITY: f64 = 1.5;
}

/// The trending score of a post: weighted engagement, plus one so that fresh posts without
/// engagement still order by age, divided by `(age_hours + 2)^1.5` (Hacker News-style decay).
pub fn trending_score(counts: &PostCounts, age: Duration) -> f64 {
    let engagement = weights::LIKE * counts.likes as f64
        + weights::REPOST * counts.reposts as f64
        + weights::COMMENT * counts.comments as f64
        + weights::DOWNLOAD * counts.downloads as f64
        + weights::PLAY * counts.plays as f64;
    (engagement + 1.0) / (age.as_secs_f64() / 3600.0 + 2.0).powf(weights::GRAVITY)
}

/// Share of each source in the unified feed: following 50 %, Gorse 25 %, trending 15 %,
/// recent 10 %.
pub const UNIFIED_WEIGHTS: [(ItemSource, u32); 4] = [
    (ItemSource::Following, 10),
    (ItemSource::Gorse, 5),
    (ItemSource::Trending, 3),
    (ItemSource::Recent, 2),
];

/// Interleaves candidate lists by weight (smooth weighted round-robin), skipping posts already
/// taken and posts `exclude` rejects, until `need` items or every list is exhausted. When a
/// source runs dry the others fill its share.
pub fn mix(
    sources: Vec<(ItemSource, u32, Vec<PostId>)>,
    exclude: impl Fn(&PostId) -> bool,
    need: usize,
) -> Vec<(PostId, ItemSource)> {
    let mut cursors: Vec<(ItemSource, i64, std::vec::IntoIter<PostId>, i64)> = sources
        .into_iter()
        .filter(|(_, weight, _)| *weight > 0)
        .map(|(source, weight, ids)| (source, i64::from(weight), ids.into_iter(), 0))
        .collect();
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(need);
    while out.len() < need && !cursors.is_empty() {
        let total: i64 = cursors.iter().map(|c| c.1).sum();
        for cursor in &mut cursors {
            cursor.3 += cursor.1;
        }
        let Some(pick) = (0..cursors.len()).max_by_key(|&i| (cursors[i].3, -(i as i64))) else {
            break;
        };
        cursors[pick].3 -= total;
        let source = cursors[pick].0;
        let next = cursors[pick]
            .2
            .by_ref()
            .find(|id| !exclude(id) && !seen.contains(id));
        match next {
            Some(id) => {
                seen.insert(id);
                out.push((id, source));
            }
            None => {
                cursors.remove(pick);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(likes: u64, plays: u64) -> PostCounts {
        PostCounts {
            likes,
            plays,
            ..Default::default()
        }
    }

    #[test]
    fn more_engagement_ranks_higher_at_the_same_age() {
        let hour = Duration::from_secs(3600);
        assert!(trending_score(&counts(10, 0), hour) > trending_score(&counts(2, 0), hour));
    }

    #[test]
    fn age_decays_the_score() {
        let same = counts(10, 100);
        assert!(
            trending_score(&same, Duration::from_secs(3600))
                > trending_score(&same, Duration::from_secs(48 * 3600))
        );
        // Ten times the likes a day later still loses to a fresh post with few.
        assert!(
            trending_score(&counts(5, 0), Duration::ZERO)
                > trending_score(&counts(50, 0), Duration::from_secs(72 * 3600))
        );
    }

    #[test]
    fn the_mix_follows_the_weights_and_never_repeats() {
        let ids = |n: usize| (0..n).map(|_| PostId::new()).collect::<Vec<_>>();
        let following = ids(100);
        let gorse = ids(100);
        let shared = following[0];
        let mut trending = ids(99);
        trending.insert(0, shared);
        let sources = vec![
            (ItemSource::Following, 10, following),
            (ItemSource::Gorse, 5, gorse),
            (ItemSource::Trending, 3, trending),
            (ItemSource::Recent, 2, ids(100)),
        ];
        let mixed = mix(sources, |_| false, 40);
        assert_eq!(mixed.len(), 40);
        let count = |s| mixed.iter().filter(|(_, src)| *src == s).count();
        assert_eq!(count(ItemSource::Following), 20);
        assert_eq!(count(ItemSource::Gorse), 10);
        assert_eq!(count(ItemSource::Trending), 6);
        assert_eq!(count(ItemSource::Recent), 4);
        let unique: HashSet<_> = mixed.iter().map(|(id, _)| *id).collect();
        assert_eq!(unique.len(), 40);
    }

    #[test]
    fn exhausted_sources_leave_room_for_the_others_and_exclusions_hold() {
        let own = PostId::new();
        let other = PostId::new();
        let mixed = mix(
            vec![
                (ItemSource::Following, 10, vec![own]),
                (ItemSource::Recent, 2, vec![own, other]),
            ],
            |id| *id == own,
            5,
        );
        assert_eq!(mixed, vec![(other, ItemSource::Recent)]);
    }
}
