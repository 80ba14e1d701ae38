//! What the workers do: the operations, each scenario's mix of them, the Zipf pickers that
//! make a few users and posts popular, and the made-up content of posts and comments.
//!
//! Everything here is pure (a seeded RNG in, a decision out), so it is unit-tested.

use anyhow::Context as _;
use rand::Rng;
use rand::distr::Distribution as _;
use rand::distr::weighted::WeightedIndex;
use rand::seq::IndexedRandom as _;
use rand_distr::Zipf;
use serde::{Deserialize, Serialize};

use crate::cli::Scenario;
use crate::client::{Call, Feed, NewPost, Page};
use crate::setup::World;

/// Zipf exponent of every popularity choice (1.0: the classic 1/rank law).
pub const ZIPF_EXPONENT: f64 = 1.0;
/// Items per feed page.
pub const PAGE_LIMIT: u32 = 20;
/// Pages a reader may scroll to (offsets `0, 20, … 80`), shallow ones far more often.
pub const PAGES: usize = 5;

/// One kind of request, measured on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// `GET /api/v1/feed/timeline`.
    Timeline,
    /// `GET /api/v1/feed/unified`.
    Unified,
    /// `GET /api/v1/feed/trending`.
    Trending,
    /// `GET /api/v1/users/{id}/posts`.
    UserPosts,
    /// `GET /api/v1/auth/me`.
    Me,
    /// `POST /api/v1/social/like`.
    Like,
    /// `POST /api/v1/posts/{id}/play`.
    Play,
    /// `POST /api/v1/users/{id}/follow`.
    Follow,
    /// `POST /api/v1/posts/{id}/comments`.
    Comment,
    /// `POST /api/v1/feed/post`.
    Post,
}

impl Operation {
    /// Name in tables, results and the write log.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Timeline => "timeline",
            Operation::Unified => "unified",
            Operation::Trending => "trending",
            Operation::UserPosts => "user_posts",
            Operation::Me => "auth_me",
            Operation::Like => "like",
            Operation::Play => "play",
            Operation::Follow => "follow",
            Operation::Comment => "comment",
            Operation::Post => "post",
        }
    }

    /// Whether it stores an event (and goes to the write log).
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Operation::Like
                | Operation::Play
                | Operation::Follow
                | Operation::Comment
                | Operation::Post
        )
    }
}

/// A scenario's operations with their relative weights.
#[derive(Debug, Clone)]
pub struct Mix {
    entries: Vec<(Operation, u32)>,
    index: WeightedIndex<u32>,
}

impl Mix {
    /// The mix of `scenario`. Weights are relative; `mixed` follows the brief
    /// (feeds 70: timeline 30, unified 20, trending 10, user posts 10; likes 10, plays 10,
    /// follows 3, comments 3, posts 2), `write` keeps the mixed proportions of its writes.
    pub fn for_scenario(scenario: Scenario) -> anyhow::Result<Self> {
        use Operation as O;
        let entries = match scenario {
            Scenario::Mixed => vec![
                (O::Timeline, 30),
                (O::Unified, 20),
                (O::Trending, 10),
                (O::UserPosts, 10),
                (O::Like, 10),
                (O::Play, 10),
                (O::Follow, 3),
                (O::Comment, 3),
                (O::Post, 2),
            ],
            Scenario::Feed => vec![(O::Timeline, 1)],
            Scenario::Like => vec![(O::Like, 1)],
            Scenario::Auth => vec![(O::Me, 1)],
            Scenario::Write => vec![
                (O::Like, 10),
                (O::Play, 10),
                (O::Comment, 3),
                (O::Follow, 3),
            ],
        };
        let index = WeightedIndex::new(entries.iter().map(|(_, w)| *w))
            .with_context(|| format!("bad operation weights for {}", scenario.name()))?;
        Ok(Self { entries, index })
    }

    /// The operations this mix can pick.
    pub fn operations(&self) -> Vec<Operation> {
        self.entries.iter().map(|(op, _)| *op).collect()
    }

    /// Picks an operation by weight.
    pub fn pick<R: Rng + ?Sized>(&self, rng: &mut R) -> Operation {
        self.entries[self.index.sample(rng)].0
    }
}

#[cfg(test)]
impl Mix {
    /// Share of `op` in the mix (0 to 1).
    pub fn share(&self, op: Operation) -> f64 {
        let total: u32 = self.entries.iter().map(|(_, w)| w).sum();
        let weight: u32 = self
            .entries
            .iter()
            .filter(|(o, _)| *o == op)
            .map(|(_, w)| w)
            .sum();
        f64::from(weight) / f64::from(total.max(1))
    }
}

/// Picks indices `0..n` with probability proportional to `1 / (rank + 1)^s`: index 0 is the
/// most popular.
#[derive(Debug, Clone)]
pub struct ZipfPicker {
    n: usize,
    zipf: Zipf<f64>,
}

impl ZipfPicker {
    /// A picker over `n` (≥ 1) items with exponent `s` (≥ 0).
    pub fn new(n: usize, s: f64) -> anyhow::Result<Self> {
        let zipf = Zipf::new(n as f64, s)
            .with_context(|| format!("no Zipf distribution over {n} items with exponent {s}"))?;
        Ok(Self { n, zipf })
    }

    /// An index in `0..n`.
    pub fn pick<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        // Samples are whole numbers in 1..=n (the cast saturates, and is clamped anyway).
        let rank = self.zipf.sample(rng) as usize;
        rank.saturating_sub(1).min(self.n - 1)
    }
}

/// One request to make: the operation, the acting user and the call.
#[derive(Debug)]
pub struct Planned<'w> {
    /// What is measured.
    pub op: Operation,
    /// Index of the acting user in the world.
    pub actor: usize,
    /// The post or user acted on, for the write log.
    pub target: Option<&'w str>,
    /// The call.
    pub call: Call<'w>,
}

/// Content a planned call refers to that must outlive the plan (comment text, new posts).
#[derive(Debug, Default)]
pub struct Scratch {
    comment: String,
    post: Option<NewPost>,
}

/// Decides each request of a scenario: operation, user, target, page.
#[derive(Debug, Clone)]
pub struct Planner {
    mix: Mix,
    users: ZipfPicker,
    posts: ZipfPicker,
    pages: ZipfPicker,
    deep_pages: bool,
    user_count: usize,
}

impl Planner {
    /// A planner for `scenario` over a world of `users` users and `posts` posts.
    pub fn new(scenario: Scenario, users: usize, posts: usize) -> anyhow::Result<Self> {
        anyhow::ensure!(users >= 2, "at least two users are needed");
        anyhow::ensure!(posts >= 1, "at least one post is needed");
        Ok(Self {
            mix: Mix::for_scenario(scenario)?,
            users: ZipfPicker::new(users, ZIPF_EXPONENT)?,
            posts: ZipfPicker::new(posts, ZIPF_EXPONENT)?,
            pages: ZipfPicker::new(PAGES, ZIPF_EXPONENT)?,
            // The feed scenario reads first pages only: the cached path.
            deep_pages: scenario != Scenario::Feed,
            user_count: users,
        })
    }

    /// The operations this planner's scenario uses.
    pub fn operations(&self) -> Vec<Operation> {
        self.mix.operations()
    }

    /// A popular user other than `actor`.
    fn other_user<R: Rng + ?Sized>(&self, rng: &mut R, actor: usize) -> usize {
        for _ in 0..4 {
            let user = self.users.pick(rng);
            if user != actor {
                return user;
            }
        }
        (actor + 1) % self.user_count
    }

    fn page<R: Rng + ?Sized>(&self, rng: &mut R) -> Page {
        let page = if self.deep_pages {
            self.pages.pick(rng)
        } else {
            0
        };
        Page {
            limit: PAGE_LIMIT,
            offset: u32::try_from(page).unwrap_or(0) * PAGE_LIMIT,
        }
    }

    /// The next request. `scratch` holds generated text the call borrows.
    pub fn plan<'w, R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        world: &'w World,
        scratch: &'w mut Scratch,
    ) -> Planned<'w> {
        let op = self.mix.pick(rng);
        let actor = self.users.pick(rng);
        let post = |rng: &mut R| &world.posts[self.posts.pick(rng)];
        let (target, call) = match op {
            Operation::Timeline => (None, Call::Feed(Feed::Timeline, self.page(rng))),
            Operation::Unified => (None, Call::Feed(Feed::Unified, self.page(rng))),
            Operation::Trending => (None, Call::Feed(Feed::Trending, self.page(rng))),
            Operation::UserPosts => {
                let user = &world.users[self.users.pick(rng)].id;
                (Some(user.as_str()), Call::UserPosts(user, self.page(rng)))
            }
            Operation::Me => (None, Call::Me),
            Operation::Like => {
                let post = post(rng);
                (Some(post.id.as_str()), Call::Like(&post.id))
            }
            Operation::Play => {
                let post = post(rng);
                let completed = rng.random_bool(0.3);
                let duration = if completed {
                    post.duration_seconds
                } else {
                    (rng.random_range(0.1..1.0) * post.duration_seconds * 10.0).round() / 10.0
                };
                (
                    Some(post.id.as_str()),
                    Call::Play {
                        post: &post.id,
                        duration,
                        completed,
                    },
                )
            }
            Operation::Follow => {
                let user = &world.users[self.other_user(rng, actor)].id;
                (Some(user.as_str()), Call::Follow(user))
            }
            Operation::Comment => {
                let post = post(rng);
                scratch.comment = random_comment(rng);
                (
                    Some(post.id.as_str()),
                    Call::Comment {
                        post: &post.id,
                        content: &scratch.comment,
                    },
                )
            }
            Operation::Post => {
                let new_post = scratch.post.insert(random_post(rng));
                (None, Call::CreatePost(new_post))
            }
        };
        Planned {
            op,
            actor,
            target,
            call,
        }
    }
}

const KEYS: [&str; 12] = [
    "C major", "C minor", "D minor", "E minor", "F major", "F minor", "G major", "G minor",
    "A minor", "A major", "B minor", "Bb major",
];
const GENRES: [&str; 10] = [
    "techno",
    "house",
    "hip-hop",
    "trap",
    "lo-fi",
    "drum and bass",
    "ambient",
    "synthwave",
    "afrobeats",
    "pop",
];
const DAWS: [&str; 6] = [
    "Ableton Live",
    "FL Studio",
    "Logic Pro",
    "Bitwig Studio",
    "Reaper",
    "Cubase",
];
const WORDS: [&str; 12] = [
    "dusty",
    "late-night",
    "bouncy",
    "dark",
    "warm",
    "glitchy",
    "rolling",
    "hazy",
    "punchy",
    "lush",
    "broken",
    "deep",
];
const THINGS: [&str; 8] = [
    "loop", "groove", "chords", "bassline", "drums", "pad", "riff", "break",
];
const COMMENTS: [&str; 10] = [
    "this slaps",
    "love the swing on the hats",
    "what synth is that?",
    "the low end is huge",
    "flipping this tonight",
    "clean mix, how did you sidechain the pad?",
    "those chords are so good",
    "need the stems!",
    "vibe",
    "the drop at bar 9 though",
];

fn pick<'a, R: Rng + ?Sized>(rng: &mut R, items: &[&'a str]) -> &'a str {
    items.choose(rng).copied().unwrap_or_default()
}

/// A plausible loop: https audio URL, bpm 60–180, a key, one or two genres, 2–60 s.
pub fn random_post<R: Rng + ?Sized>(rng: &mut R) -> NewPost {
    let genre_count = rng.random_range(1..=2);
    let genres: Vec<String> = GENRES
        .choose_multiple(rng, genre_count)
        .map(|g| (*g).to_owned())
        .collect();
    let bpm = f64::from(rng.random_range(60_u32..=180));
    let bars = f64::from(rng.random_range(1_u32..=16));
    // Bars of 4/4 at this tempo, at least two seconds.
    let duration_seconds = ((bars * 4.0 * 60.0 / bpm).max(2.0) * 100.0).round() / 100.0;
    let file = rng.random::<u64>();
    NewPost {
        title: Some(format!("{} {}", pick(rng, &WORDS), pick(rng, &THINGS))),
        audio_url: format!("https://cdn.sidechain.test/loops/{file:016x}.wav"),
        waveform_url: None,
        bpm,
        key: pick(rng, &KEYS).to_owned(),
        genres,
        duration_seconds,
        daw: Some(pick(rng, &DAWS).to_owned()),
    }
}

/// A short comment.
pub fn random_comment<R: Rng + ?Sized>(rng: &mut R) -> String {
    pick(rng, &COMMENTS).to_owned()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng as _;
    use rand::rngs::SmallRng;

    use super::*;

    #[test]
    fn zipf_picks_stay_in_range_and_favour_low_ranks() {
        let mut rng = SmallRng::seed_from_u64(7);
        let picker = ZipfPicker::new(100, 1.0).expect("valid");
        let mut counts = [0_u32; 100];
        let draws = 200_000;
        for _ in 0..draws {
            counts[picker.pick(&mut rng)] += 1;
        }
        // With s = 1, P(rank k) = 1 / (k · H_100), H_100 ≈ 5.187.
        let expected_first = f64::from(draws) / 5.187;
        let first = f64::from(counts[0]);
        assert!(
            (first - expected_first).abs() < expected_first * 0.05,
            "rank 1 drew {first}, expected about {expected_first}"
        );
        assert!(counts[0] > counts[1] && counts[1] > counts[4] && counts[4] > counts[49]);
        // Rank 2 gets about half of rank 1.
        let ratio = f64::from(counts[1]) / first;
        assert!((ratio - 0.5).abs() < 0.05, "ratio {ratio}");
        assert!(counts[99] > 0, "the tail is reachable");
    }

    #[test]
    fn zipf_over_one_item_always_picks_it() {
        let mut rng = SmallRng::seed_from_u64(1);
        let picker = ZipfPicker::new(1, 1.0).expect("valid");
        assert!((0..1000).all(|_| picker.pick(&mut rng) == 0));
        assert!(ZipfPicker::new(0, 1.0).is_err());
    }

    #[test]
    fn mixed_mix_matches_the_brief() {
        let mix = Mix::for_scenario(Scenario::Mixed).expect("mix");
        let mut rng = SmallRng::seed_from_u64(42);
        let draws = 100_000;
        let mut counts = std::collections::HashMap::new();
        for _ in 0..draws {
            *counts.entry(mix.pick(&mut rng)).or_insert(0_u32) += 1;
        }
        let observed = |op| f64::from(counts.get(&op).copied().unwrap_or(0)) / f64::from(draws);
        for op in mix.operations() {
            let (share, seen) = (mix.share(op), observed(op));
            assert!(
                (seen - share).abs() < 0.01,
                "{op:?}: expected {share}, saw {seen}"
            );
        }
        let reads: f64 = [
            Operation::Timeline,
            Operation::Unified,
            Operation::Trending,
            Operation::UserPosts,
        ]
        .into_iter()
        .map(|op| mix.share(op))
        .sum();
        assert!((reads - 0.70).abs() < 0.02, "feed reads {reads}");
        assert!((mix.share(Operation::Like) - 0.10).abs() < 0.01);
        assert!((mix.share(Operation::Post) - 0.02).abs() < 0.01);
    }

    #[test]
    fn single_purpose_scenarios_do_one_thing() {
        let mut rng = SmallRng::seed_from_u64(3);
        for (scenario, op) in [
            (Scenario::Feed, Operation::Timeline),
            (Scenario::Like, Operation::Like),
            (Scenario::Auth, Operation::Me),
        ] {
            let mix = Mix::for_scenario(scenario).expect("mix");
            assert!((0..1000).all(|_| mix.pick(&mut rng) == op), "{scenario:?}");
        }
        let write = Mix::for_scenario(Scenario::Write).expect("mix");
        assert!((0..1000).all(|_| write.pick(&mut rng).is_write()));
        assert_eq!(write.share(Operation::Post), 0.0);
    }

    #[test]
    fn posts_are_valid_for_the_edge() {
        let mut rng = SmallRng::seed_from_u64(9);
        for _ in 0..1000 {
            let post = random_post(&mut rng);
            assert!(post.audio_url.starts_with("https://"));
            assert!((60.0..=180.0).contains(&post.bpm));
            assert!((1..=2).contains(&post.genres.len()));
            assert!(post.duration_seconds > 0.0 && post.duration_seconds <= 3600.0);
            assert!(!post.key.is_empty() && post.key.len() <= 32);
        }
    }

    #[test]
    fn plans_follow_others_and_read_shallow_pages_in_the_feed_scenario() {
        let world = World::fake(10, 3);
        let mut rng = SmallRng::seed_from_u64(5);
        let planner = Planner::new(Scenario::Write, 10, 30).expect("planner");
        for _ in 0..2000 {
            let mut scratch = Scratch::default();
            let planned = planner.plan(&mut rng, &world, &mut scratch);
            if let Call::Follow(target) = planned.call {
                assert_ne!(
                    target, world.users[planned.actor].id,
                    "never follows itself"
                );
            }
            assert!(planned.op.is_write());
            assert!(planned.target.is_some());
        }
        let planner = Planner::new(Scenario::Feed, 10, 30).expect("planner");
        for _ in 0..500 {
            let mut scratch = Scratch::default();
            match planner.plan(&mut rng, &world, &mut scratch).call {
                Call::Feed(Feed::Timeline, page) => assert_eq!(page.offset, 0),
                other => panic!("unexpected call {other:?}"),
            }
        }
    }
}
