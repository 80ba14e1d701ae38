//! Set-up (not measured): registers the users, has each follow a few popular others, and
//! has each share a few posts — the world the workload then acts on.
//!
//! Usernames carry a fresh run id so every run makes new accounts. Requests run a bounded
//! number at a time; a 429 waits as long as `Retry-After` says (and is counted), a 5xx or a
//! transport failure is retried a few times with backoff, and writes carry an
//! `Idempotency-Key` so a retry stores one event. If the API cannot be reached the run stops
//! with an error (and a non-zero exit code).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use rand::SeedableRng as _;
use rand::rngs::SmallRng;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::client::{self, ApiClient, AuthEnvelope, Call, NewPost, Registration, Reply};
use crate::scenario::{ZIPF_EXPONENT, ZipfPicker, random_post};

/// A registered user this tool can act as.
#[derive(Debug, Clone)]
pub struct User {
    /// User id (UUID).
    pub id: String,
    /// Bearer token.
    pub token: String,
}

/// A post made during set-up.
#[derive(Debug, Clone)]
pub struct Post {
    /// Post id (UUID).
    pub id: String,
    /// Length, so plays can listen to part or all of it.
    pub duration_seconds: f64,
}

/// Users and posts, most popular first (the Zipf pickers favour low indices).
#[derive(Debug, Clone)]
pub struct World {
    /// Users.
    pub users: Vec<User>,
    /// Posts.
    pub posts: Vec<Post>,
}

/// What set-up asks for.
#[derive(Debug, Clone)]
pub struct SetupPlan {
    /// Users to register.
    pub users: usize,
    /// Posts per user.
    pub posts_per_user: usize,
    /// Follows per user.
    pub follows_per_user: usize,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Seed of the follow graph and post contents.
    pub seed: u64,
    /// No progress lines.
    pub quiet: bool,
}

/// What set-up did, for the result file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetupReport {
    /// Prefix of this run's usernames.
    pub run_id: String,
    /// Users registered.
    pub users: usize,
    /// Posts created.
    pub posts: usize,
    /// Follows made.
    pub follows: usize,
    /// 429 answers waited out.
    pub rate_limited: u64,
    /// Requests retried after a 5xx or a transport failure.
    pub retried: u64,
    /// Wall time of set-up.
    pub seconds: f64,
}

/// Attempts of one request after 5xx answers or transport failures.
const MAX_ATTEMPTS: u32 = 6;
/// 429 answers one request waits out before giving up.
const MAX_RATE_LIMITED_WAITS: u32 = 200;
/// Wait after a 429 without a usable `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct Counters {
    rate_limited: AtomicU64,
    retried: AtomicU64,
    told_about_limits: AtomicBool,
}

/// Shared by the set-up tasks.
#[derive(Debug)]
struct Ctx {
    client: ApiClient,
    counters: Counters,
    quiet: bool,
}

impl Ctx {
    /// Sends `call`, waiting out 429s and retrying 5xx and transport failures. Returns the
    /// first answer that is neither, or an error when the API could not be reached.
    async fn send(
        &self,
        token: Option<&str>,
        call: &Call<'_>,
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<Reply> {
        let mut failures = 0;
        let mut waits = 0;
        loop {
            match client::send(&self.client, token, call, idempotency_key).await {
                Ok(reply)
                    if reply.status == StatusCode::TOO_MANY_REQUESTS
                        && waits < MAX_RATE_LIMITED_WAITS =>
                {
                    waits += 1;
                    self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                    if !self.quiet
                        && !self
                            .counters
                            .told_about_limits
                            .swap(true, Ordering::Relaxed)
                    {
                        println!(
                            "setup: rate limited (429); waiting as Retry-After says. Start the \
                             services with higher RATE_LIMIT_* values for a faster set-up."
                        );
                    }
                    let wait = reply
                        .retry_after()
                        .unwrap_or(DEFAULT_RETRY_AFTER)
                        .clamp(Duration::from_millis(100), Duration::from_secs(60));
                    tokio::time::sleep(wait).await;
                }
                Ok(reply) if reply.status.is_server_error() && failures + 1 < MAX_ATTEMPTS => {
                    failures += 1;
                    self.counters.retried.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(
                        backoff(failures).max(reply.retry_after().unwrap_or_default()),
                    )
                    .await;
                }
                Ok(reply) => return Ok(reply),
                Err(_) if failures + 1 < MAX_ATTEMPTS => {
                    failures += 1;
                    self.counters.retried.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(backoff(failures)).await;
                }
                Err(failure) => {
                    return Err(anyhow!(failure.error).context(format!(
                        "the API at {} could not be reached during set-up ({} after {MAX_ATTEMPTS} attempts)",
                        self.client.base(),
                        failure.kind.label()
                    )));
                }
            }
        }
    }
}

/// 200 ms, 400 ms, … capped at 5 s.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100 << failures.min(6)).min(Duration::from_secs(5))
}

fn expect_success(reply: &Reply, what: &str) -> anyhow::Result<()> {
    if reply.status.is_success() {
        Ok(())
    } else {
        bail!(
            "{what} failed during set-up with {}: {}",
            reply.status,
            reply.body_excerpt()
        )
    }
}

/// Runs `work(i)` for every `i` in `0..count`, at most `concurrency` at once, and returns
/// the results in index order, or the first error.
async fn for_each_index<T, F, Fut>(
    count: usize,
    concurrency: usize,
    work: F,
) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<T>> + Send,
{
    let work = Arc::new(work);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency.clamp(1, count.max(1)) {
        let (work, next) = (work.clone(), next.clone());
        tasks.spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, anyhow::Error>(done);
                }
                done.push((i, work(i).await?));
            }
        });
    }
    let mut results = Vec::with_capacity(count);
    while let Some(joined) = tasks.join_next().await {
        // The first failure drops the JoinSet, which aborts the other tasks.
        results.extend(joined.context("a set-up task panicked")??);
    }
    results.sort_by_key(|(i, _)| *i);
    Ok(results.into_iter().map(|(_, t)| t).collect())
}

/// Fresh for every run (not from the seed), so reruns never collide on usernames.
fn new_run_id() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    id[..8].to_owned()
}

fn registration(run_id: &str, i: usize) -> Registration {
    // "lt" + 8 + "_" + up to 7 digits: at most 18 characters.
    let username = format!("lt{run_id}_{i}");
    Registration::new(
        &username,
        "load.sidechain.test",
        &format!("load-test-{run_id}"),
    )
}

/// Who follows whom: each user follows up to `per_user` distinct others, picked by
/// popularity (Zipf over users). Pairs are `(follower, followed)`.
pub fn follow_pairs(
    rng: &mut SmallRng,
    users: usize,
    per_user: usize,
) -> anyhow::Result<Vec<(usize, usize)>> {
    let picker = ZipfPicker::new(users, ZIPF_EXPONENT)?;
    let want = per_user.min(users.saturating_sub(1));
    let mut pairs = Vec::with_capacity(users * want);
    for follower in 0..users {
        let mut chosen: Vec<usize> = Vec::with_capacity(want);
        // Popular users are drawn again and again; give up on the long tail after a while
        // (so "about" per_user follows each).
        for _ in 0..want * 50 {
            if chosen.len() == want {
                break;
            }
            let followed = picker.pick(rng);
            if followed != follower && !chosen.contains(&followed) {
                chosen.push(followed);
            }
        }
        pairs.extend(chosen.into_iter().map(|followed| (follower, followed)));
    }
    Ok(pairs)
}

/// Builds the world. Fails if the API cannot be reached or refuses set-up requests.
pub async fn prepare(client: ApiClient, plan: &SetupPlan) -> anyhow::Result<(World, SetupReport)> {
    let started = Instant::now();
    let ctx = Arc::new(Ctx {
        client,
        counters: Counters::default(),
        quiet: plan.quiet,
    });
    let say = |message: String| {
        if !plan.quiet {
            println!(
                "setup: {message} ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
        }
    };

    // Fail fast, with a clear message, when nothing answers.
    match client::send(&ctx.client, None, &Call::Health, None).await {
        Ok(reply) if reply.status.is_success() => {}
        Ok(reply) => say(format!("GET /health answered {}; going on", reply.status)),
        Err(failure) => {
            return Err(anyhow!(failure.error).context(format!(
                "cannot reach the API at {} ({})",
                ctx.client.base(),
                failure.kind.label()
            )));
        }
    }

    let run_id = new_run_id();
    let users = {
        let (ctx, run_id) = (ctx.clone(), run_id.clone());
        for_each_index(plan.users, plan.concurrency, move |i| {
            let (ctx, run_id) = (ctx.clone(), run_id.clone());
            async move { register(&ctx, &registration(&run_id, i)).await }
        })
        .await?
    };
    say(format!(
        "{} users registered (run id {run_id})",
        users.len()
    ));
    let users = Arc::new(users);

    let mut rng = SmallRng::seed_from_u64(plan.seed);
    let pairs = Arc::new(follow_pairs(&mut rng, plan.users, plan.follows_per_user)?);
    {
        let (ctx, users, pairs, run_id) =
            (ctx.clone(), users.clone(), pairs.clone(), run_id.clone());
        for_each_index(pairs.len(), plan.concurrency, move |i| {
            let (ctx, users, pairs, run_id) =
                (ctx.clone(), users.clone(), pairs.clone(), run_id.clone());
            async move {
                let (follower, followed) = pairs[i];
                let key = format!("{run_id}-follow-{i}");
                let reply = ctx
                    .send(
                        Some(&users[follower].token),
                        &Call::Follow(&users[followed].id),
                        Some(&key),
                    )
                    .await?;
                expect_success(&reply, "a follow")
            }
        })
        .await?;
    }
    say(format!("{} follows made", pairs.len()));

    let drafts: Arc<Vec<(usize, NewPost)>> = Arc::new(
        (0..plan.users)
            .flat_map(|author| (0..plan.posts_per_user).map(move |_| author))
            .map(|author| (author, random_post(&mut rng)))
            .collect(),
    );
    let posts = {
        let (ctx, users, drafts, run_id) =
            (ctx.clone(), users.clone(), drafts.clone(), run_id.clone());
        for_each_index(drafts.len(), plan.concurrency, move |i| {
            let (ctx, users, drafts, run_id) =
                (ctx.clone(), users.clone(), drafts.clone(), run_id.clone());
            async move {
                let (author, draft) = &drafts[i];
                let key = format!("{run_id}-post-{i}");
                let reply = ctx
                    .send(
                        Some(&users[*author].token),
                        &Call::CreatePost(draft),
                        Some(&key),
                    )
                    .await?;
                expect_success(&reply, "creating a post")?;
                let created: crate::client::WriteAck = serde_json::from_slice(&reply.body)
                    .context("the new post's answer is not the expected JSON")?;
                let id = created.id.context("the new post's answer has no `id`")?;
                Ok(Post {
                    id,
                    duration_seconds: draft.duration_seconds,
                })
            }
        })
        .await?
    };
    say(format!("{} posts created", posts.len()));

    let report = SetupReport {
        run_id,
        users: users.len(),
        posts: posts.len(),
        follows: pairs.len(),
        rate_limited: ctx.counters.rate_limited.load(Ordering::Relaxed),
        retried: ctx.counters.retried.load(Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
    };
    let users = Arc::try_unwrap(users).unwrap_or_else(|shared| shared.as_ref().clone());
    Ok((World { users, posts }, report))
}

/// Registers one user (or, if a retried registration already went through, signs in).
async fn register(ctx: &Ctx, registration: &Registration) -> anyhow::Result<User> {
    let mut reply = ctx.send(None, &Call::Register(registration), None).await?;
    if reply.status == StatusCode::CONFLICT {
        // The name carries this run's id, so a conflict means an earlier attempt of ours
        // was stored even though its answer was lost.
        let login = Call::Login {
            username: &registration.username,
            password: &registration.password,
        };
        reply = ctx.send(None, &login, None).await?;
    }
    expect_success(&reply, "registering a user")?;
    let envelope: AuthEnvelope = serde_json::from_slice(&reply.body)
        .context("the registration answer is not the expected JSON")?;
    Ok(User {
        id: envelope.auth.user.id,
        token: envelope.auth.token,
    })
}

#[cfg(test)]
impl World {
    /// A world without a server, for tests.
    pub fn fake(users: usize, posts_per_user: usize) -> Self {
        let users: Vec<User> = (0..users)
            .map(|i| User {
                id: format!("00000000-0000-4000-8000-{i:012}"),
                token: format!("token{i}"),
            })
            .collect();
        let posts = (0..users.len() * posts_per_user)
            .map(|i| Post {
                id: format!("10000000-0000-4000-8000-{i:012}"),
                duration_seconds: 8.0,
            })
            .collect();
        Self { users, posts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_and_emails_are_valid_and_unique() {
        let run_id = new_run_id();
        let a = registration(&run_id, 0);
        let b = registration(&run_id, 999_999);
        for r in [&a, &b] {
            assert!((3..=30).contains(&r.username.len()), "{}", r.username);
            assert!(
                r.username
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
            );
            assert!(r.password.chars().count() >= 8);
            assert!(r.email.contains('@'));
        }
        assert_ne!(a.username, b.username);
        assert_ne!(a.email, b.email);
        assert_ne!(new_run_id(), run_id, "every run gets its own id");
    }

    #[test]
    fn follows_are_distinct_never_self_and_favour_popular_users() {
        let mut rng = SmallRng::seed_from_u64(11);
        let users = 200;
        let pairs = follow_pairs(&mut rng, users, 10).expect("pairs");
        let mut followers = vec![0_usize; users];
        for follower in 0..users {
            let mut followed: Vec<usize> = pairs
                .iter()
                .filter(|(f, _)| *f == follower)
                .map(|(_, t)| *t)
                .collect();
            assert!(followed.len() >= 8 && followed.len() <= 10, "{follower}");
            assert!(!followed.contains(&follower));
            followed.sort_unstable();
            followed.dedup();
            assert!(followed.len() >= 8);
        }
        for (_, followed) in &pairs {
            followers[*followed] += 1;
        }
        assert!(
            followers[0] > followers[50] && followers[0] > 150,
            "{followers:?}"
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(2), Duration::from_millis(400));
        assert_eq!(backoff(30), Duration::from_secs(5));
    }
}
