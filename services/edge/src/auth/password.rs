//! Password hashing with argon2id (OWASP parameters: 19 MiB, 2 passes), off the async threads
//! and bounded, so a burst of logins cannot starve other requests of CPU or memory.
//!
//! The 19 MiB of working memory per hash come from a pool of at most `concurrency` buffers that
//! are reused, not from a fresh allocation per hash: with glibc's malloc a freed 19 MiB block
//! raises the dynamic mmap threshold, later blocks are carved from per-thread arenas and stay
//! resident, and the edge's RSS grew from 20 MB to over 1 GB after a few hundred logins
//! (docs/benchmarks.md, "Memory"). With the pool the hashing memory is bounded by
//! `PASSWORD_HASH_CONCURRENCY` × 19 MiB, allocated on first use.

use std::sync::{Arc, Mutex, PoisonError};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

/// Hashing failed for a reason that is not the client's (RNG, thread pool shut down).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

impl HashError {
    fn from_display(err: impl std::fmt::Display) -> Self {
        Self(err.to_string())
    }
}

/// Hashes and verifies passwords.
#[derive(Debug, Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    memory: Arc<MemoryPool>,
    /// Hash checked when the user does not exist, so "no such user" and "wrong password" take
    /// the same time and cannot be told apart.
    decoy: Arc<str>,
}

impl Passwords {
    /// At most `concurrency` hashes at a time.
    pub fn new(concurrency: usize) -> Result<Self, HashError> {
        let memory = Arc::new(MemoryPool::default());
        let decoy = memory.hash(b"decoy password never matches")?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            memory,
            decoy: decoy.into(),
        })
    }

    /// The PHC string of a new argon2id hash (random salt).
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(HashError::from_display)?;
        let memory = self.memory.clone();
        tokio::task::spawn_blocking(move || memory.hash(password.as_bytes()))
            .await
            .map_err(HashError::from_display)?
    }

    /// Whether `password` matches `hash`; with no hash (unknown user) it spends the same time
    /// on a decoy and answers `false`.
    pub async fn verify(&self, password: String, hash: Option<String>) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.decoy.to_string());
        let memory = self.memory.clone();
        let matches =
            tokio::task::spawn_blocking(move || memory.verify(password.as_bytes(), &hash))
                .await
                .unwrap_or(false);
        known && matches
    }
}

/// Reusable argon2 working memory. Callers hold a semaphore permit, so the pool never holds
/// more buffers than the hashing concurrency.
#[derive(Debug, Default)]
struct MemoryPool {
    free: Mutex<Vec<Vec<Block>>>,
}

impl MemoryPool {
    /// A new argon2id hash of `password` with the default (OWASP) parameters, as a PHC string.
    fn hash(&self, password: &[u8]) -> Result<String, HashError> {
        let params = Params::default();
        let salt_bytes =
            argon2::password_hash::try_generate_salt().map_err(HashError::from_display)?;
        let salt = Salt::new(&salt_bytes).map_err(HashError::from_display)?;
        let mut out = [0_u8; Params::DEFAULT_OUTPUT_LEN];
        self.compute(
            Algorithm::Argon2id,
            Version::V0x13,
            &params,
            password,
            &salt,
            &mut out,
        )?;
        let hash = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(HashError::from_display)?,
            salt: Some(salt),
            hash: Some(Output::new(&out).map_err(HashError::from_display)?),
        };
        Ok(hash.to_string())
    }

    /// Whether `password` hashes to the PHC string `stored` (with the algorithm, version and
    /// parameters written in it). The comparison is constant-time ([`Output`]'s equality).
    fn verify(&self, password: &[u8], stored: &str) -> bool {
        let Ok(stored) = PasswordHash::new(stored) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(stored.algorithm.as_str()) else {
            return false;
        };
        let version = match stored.version.map(Version::try_from) {
            None => Version::default(),
            Some(Ok(version)) => version,
            Some(Err(_)) => return false,
        };
        let Ok(params) = Params::try_from(&stored) else {
            return false;
        };
        let mut out = vec![0_u8; expected.len()];
        if self
            .compute(algorithm, version, &params, password, salt, &mut out)
            .is_err()
        {
            return false;
        }
        Output::new(&out).is_ok_and(|computed| &computed == expected)
    }

    /// Runs argon2 into `out` with a pooled buffer (or a one-off one when `params` asks for
    /// another memory size than the pooled buffers have, e.g. a hash from older parameters).
    fn compute(
        &self,
        algorithm: Algorithm,
        version: Version,
        params: &Params,
        password: &[u8],
        salt: &Salt,
        out: &mut [u8],
    ) -> Result<(), HashError> {
        let blocks_needed = params.block_count();
        let mut blocks = self
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .filter(|buffer| buffer.len() == blocks_needed)
            .unwrap_or_else(|| vec![Block::default(); blocks_needed]);
        let outcome = Argon2::new(algorithm, version, params.clone())
            .hash_password_into_with_memory(password, salt.as_ref(), out, &mut blocks)
            .map_err(HashError::from_display);
        if blocks.len() == Params::default().block_count() {
            self.free
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(blocks);
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let passwords = Passwords::new(2).expect("init");
        let hash = passwords.hash("correct horse".into()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(
            passwords
                .verify("correct horse".into(), Some(hash.clone()))
                .await
        );
        assert!(!passwords.verify("wrong horse".into(), Some(hash)).await);
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        let passwords = Passwords::new(1).expect("init");
        assert!(
            !passwords
                .verify("decoy password never matches".into(), None)
                .await
        );
    }

    #[tokio::test]
    async fn hashes_are_standard_phc_strings_the_argon2_crate_verifies() {
        use argon2::PasswordVerifier as _;
        let passwords = Passwords::new(1).expect("init");
        let ours = passwords.hash("correct horse".into()).await.expect("hash");
        let parsed = PasswordHash::new(&ours).expect("PHC string");
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"wrong", &parsed)
                .is_err()
        );
    }

    #[tokio::test]
    async fn hashes_made_by_the_argon2_crate_and_other_parameters_verify() {
        use argon2::PasswordHasher as _;
        let passwords = Passwords::new(1).expect("init");
        let standard = Argon2::default()
            .hash_password(b"correct horse")
            .expect("hash")
            .to_string();
        assert!(
            passwords
                .verify("correct horse".into(), Some(standard))
                .await
        );
        let light = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).expect("params"),
        )
        .hash_password(b"correct horse")
        .expect("hash")
        .to_string();
        assert!(
            passwords
                .verify("correct horse".into(), Some(light.clone()))
                .await
        );
        assert!(!passwords.verify("wrong horse".into(), Some(light)).await);
        assert!(
            !passwords
                .verify("correct horse".into(), Some("not a hash".into()))
                .await
        );
    }

    #[tokio::test]
    async fn working_memory_is_reused_not_reallocated() {
        let passwords = Passwords::new(2).expect("init");
        for _ in 0..6 {
            let (a, b) = tokio::join!(passwords.hash("one".into()), passwords.hash("two".into()));
            a.expect("hash");
            b.expect("hash");
        }
        let pooled = passwords.memory.free.lock().expect("lock").len();
        assert!((1..=2).contains(&pooled), "{pooled} buffers pooled");
    }
}
