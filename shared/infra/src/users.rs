//! User accounts, stored durably in the NATS KV bucket `users` (owned by the edge).
//!
//! Keys (KV keys allow only `[-/_=.a-zA-Z0-9]`, hence the hashed email):
//! - `user.<uuid>` → the `UserRecord` (protobuf)
//! - `username.<lower-case name>` → user id: the claim that makes usernames unique
//! - `email.<hex sha256 of lower-case email>` → user id: same for emails
//!
//! Registration claims the username, then the email, with KV `create` (atomic: of two
//! concurrent registrations exactly one wins), then writes the record. Failures undo the claims.
//! A process crash between the steps can leave a claim without a record; such a claim older
//! than [`STALE_CLAIM_AFTER`] is taken over by the next registration of that name.
//!
//! A username change claims the new name the same way, then changes the record, then releases
//! the old name. A crash in between leaves a name claimed by an account whose record carries
//! another name; such a claim is stale too (after the same delay) and is taken over.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use prost::Message as _;
use sha2::{Digest as _, Sha256};
use sidechain_events::UserId;
use sidechain_events::rpc::{RevokedToken, UserRecord};
use sidechain_events::subjects::USERS_BUCKET;

/// A claim older than this whose user record never appeared belongs to a crashed registration.
pub const STALE_CLAIM_AFTER: Duration = Duration::from_secs(60);

/// The store could not be reached or answered nonsense.
#[derive(Debug, thiserror::Error)]
#[error("user store unavailable: {0}")]
pub struct StoreError(pub String);

/// Why a registration did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// Someone has this username.
    #[error("username taken")]
    UsernameTaken,
    /// Someone has this email.
    #[error("email taken")]
    EmailTaken,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The bucket's configuration (shared with the cache service, which reads it).
pub fn bucket_config(replicas: usize) -> kv::Config {
    kv::Config {
        bucket: USERS_BUCKET.to_owned(),
        description: "Sidechain user accounts (owned by the edge service)".to_owned(),
        history: 1,
        storage: jetstream::stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    }
}

/// Reads and writes accounts. The bucket (created by provisioning) is opened on first use and reopened
/// after a failure, so a store made before NATS is reachable starts working when it is.
#[derive(Debug, Clone)]
pub struct UserStore {
    js: jetstream::Context,
    bucket: std::sync::Arc<tokio::sync::OnceCell<kv::Store>>,
}

fn user_key(id: UserId) -> String {
    format!("user.{id}")
}

fn username_key(username: &str) -> String {
    format!("username.{}", username.to_lowercase())
}

/// An email as it is stored and compared: Unicode NFKC (so full-width or composed look-alikes
/// of one address are one address), then lower case, without surrounding space.
pub fn normalize_email(email: &str) -> String {
    use unicode_normalization::UnicodeNormalization as _;
    email.trim().nfkc().collect::<String>().to_lowercase()
}

fn email_key(email: &str) -> String {
    format!(
        "email.{}",
        hex::encode(Sha256::digest(normalize_email(email).as_bytes()))
    )
}

fn store_error(err: impl std::fmt::Display) -> StoreError {
    StoreError(err.to_string())
}

impl UserStore {
    /// A store in the `users` bucket of `js` (created by provisioning).
    pub fn new(js: jetstream::Context) -> Self {
        Self {
            js,
            bucket: std::sync::Arc::default(),
        }
    }

    async fn kv(&self) -> Result<&kv::Store, StoreError> {
        self.bucket
            .get_or_try_init(|| async {
                crate::nats::open_kv_bucket(&self.js, USERS_BUCKET)
                    .await
                    .map_err(store_error)
            })
            .await
    }

    /// Stores a new account with a unique username and email.
    pub async fn register(&self, record: &UserRecord) -> Result<(), RegisterError> {
        let id = Bytes::from(record.id.clone());
        if !self
            .claim(&username_key(&record.username), id.clone())
            .await?
        {
            return Err(RegisterError::UsernameTaken);
        }
        if !self.claim(&email_key(&record.email), id).await? {
            self.release(&username_key(&record.username)).await;
            return Err(RegisterError::EmailTaken);
        }
        if let Err(err) = self
            .kv()
            .await?
            .put(
                format!("user.{}", record.id),
                Bytes::from(record.encode_to_vec()),
            )
            .await
        {
            self.release(&username_key(&record.username)).await;
            self.release(&email_key(&record.email)).await;
            return Err(store_error(err).into());
        }
        Ok(())
    }

    /// Undoes [`Self::register`] (when the registration event could not be stored).
    pub async fn unregister(&self, record: &UserRecord) {
        if let Ok(id) = record.id.parse::<UserId>() {
            self.release(&user_key(id)).await;
        }
        self.release(&username_key(&record.username)).await;
        self.release(&email_key(&record.email)).await;
    }

    /// Claims `username` for the account `id` (atomic, like registration). `Ok(false)`: taken.
    pub async fn claim_username(&self, username: &str, id: UserId) -> Result<bool, StoreError> {
        self.claim(&username_key(username), Bytes::from(id.to_string()))
            .await
    }

    /// Releases a username claim (after a username change, or to undo a claim).
    pub async fn release_username(&self, username: &str) {
        self.release(&username_key(username)).await;
    }

    /// The account with this id.
    pub async fn by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        let Some(bytes) = self
            .kv()
            .await?
            .get(user_key(id))
            .await
            .map_err(store_error)?
        else {
            return Ok(None);
        };
        UserRecord::decode(bytes).map(Some).map_err(store_error)
    }

    /// Changes an account's record with `change` (compare-and-set on its revision, retried when
    /// another writer got there first), so concurrent changes (a password change and a sign-out
    /// everywhere) never undo each other. `Ok(None)`: no such account.
    pub async fn modify(
        &self,
        id: UserId,
        change: impl Fn(&mut UserRecord),
    ) -> Result<Option<UserRecord>, StoreError> {
        let kv = self.kv().await?;
        for _ in 0..MODIFY_ATTEMPTS {
            let Some(entry) = kv.entry(user_key(id)).await.map_err(store_error)? else {
                return Ok(None);
            };
            if entry.operation != kv::Operation::Put {
                return Ok(None);
            }
            let mut record = UserRecord::decode(entry.value).map_err(store_error)?;
            change(&mut record);
            match kv
                .update(
                    user_key(id),
                    Bytes::from(record.encode_to_vec()),
                    entry.revision,
                )
                .await
            {
                Ok(_) => return Ok(Some(record)),
                Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                Err(err) => return Err(store_error(err)),
            }
        }
        Err(StoreError(format!(
            "account {id} kept changing under {MODIFY_ATTEMPTS} attempts"
        )))
    }

    /// The account whose username or email is `login` (case-insensitive).
    pub async fn by_login(&self, login: &str) -> Result<Option<UserRecord>, StoreError> {
        let key = if login.contains('@') {
            email_key(login)
        } else {
            username_key(login)
        };
        if !is_valid_key(&key) {
            return Ok(None);
        }
        let Some(id) = self.kv().await?.get(key).await.map_err(store_error)? else {
            return Ok(None);
        };
        let Some(id) = std::str::from_utf8(&id).ok().and_then(|s| s.parse().ok()) else {
            return Ok(None);
        };
        self.by_id(id).await
    }

    /// Creates `key` → `value` unless someone holds it. Takes over a stale claim (see module
    /// docs). `Ok(false)` means taken.
    async fn claim(&self, key: &str, value: Bytes) -> Result<bool, StoreError> {
        let kv = self.kv().await?;
        match kv.create(key, value.clone()).await {
            Ok(_) => return Ok(true),
            Err(err) if err.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(err) => return Err(store_error(err)),
        }
        let Some(entry) = kv.entry(key).await.map_err(store_error)? else {
            return Ok(false);
        };
        let owner = std::str::from_utf8(&entry.value)
            .ok()
            .and_then(|s| s.parse::<UserId>().ok());
        // Orphaned: its owner has no record, or (a username claim left by an interrupted
        // username change) the owner's record carries another name.
        let orphaned = match owner {
            Some(owner) => match self.by_id(owner).await? {
                None => true,
                Some(record) => {
                    key.starts_with("username.") && username_key(&record.username) != key
                }
            },
            None => true,
        };
        let age = chrono::Utc::now() - entry.created;
        if !orphaned || age < chrono::Duration::from_std(STALE_CLAIM_AFTER).unwrap_or_default() {
            return Ok(false);
        }
        tracing::warn!(
            key,
            "taking over a claim left by an interrupted registration"
        );
        // Compare-and-swap on the revision: if anyone else touched it, they win.
        match kv.update(key, value, entry.revision).await {
            Ok(_) => Ok(true),
            Err(_) => Ok(false),
        }
    }

    async fn release(&self, key: &str) {
        let purged = match self.kv().await {
            Ok(kv) => kv.purge(key).await.map_err(store_error),
            Err(err) => Err(err),
        };
        if let Err(err) = purged {
            tracing::warn!(key, error = %err, "could not release a user key; it will be reclaimed when stale");
        }
    }
}

/// Most single-token revocations an account keeps; past it the soonest-expiring are dropped
/// (each token lives at most `JWT_TTL`, so this takes many sign-outs within one day).
pub const MAX_REVOKED_TOKENS: usize = 1_000;

/// Whether the account says the token is dead: issued before its sessions ended, or signed
/// out by itself. This is the durable answer, which survives the loss of every cache.
pub fn record_revokes(record: &UserRecord, token_id: &str, issued_at_ms: i64) -> bool {
    issued_at_ms < record.sessions_valid_after_ms
        || record.revoked_tokens.iter().any(|t| t.token_id == token_id)
}

/// Adds a signed-out token to the account, dropping entries that expired by `now_ms`.
pub fn revoke_in_record(record: &mut UserRecord, token_id: &str, expires_at_ms: i64, now_ms: i64) {
    record
        .revoked_tokens
        .retain(|t| t.expires_at_ms > now_ms && t.token_id != token_id);
    record.revoked_tokens.push(RevokedToken {
        token_id: token_id.to_owned(),
        expires_at_ms,
    });
    if record.revoked_tokens.len() > MAX_REVOKED_TOKENS {
        record
            .revoked_tokens
            .sort_by_key(|t| std::cmp::Reverse(t.expires_at_ms));
        record.revoked_tokens.truncate(MAX_REVOKED_TOKENS);
    }
}

/// Compare-and-set rounds of [`UserStore::modify`] before it gives up.
const MODIFY_ATTEMPTS: usize = 8;

/// Usernames are validated before they get here; this guards lookups by arbitrary text.
fn is_valid_key(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with('.')
        && !key.ends_with('.')
        && !key.contains("..")
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'.' | b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_remembers_signed_out_tokens_until_they_expire() {
        let mut record = UserRecord::default();
        revoke_in_record(&mut record, "old", 1_000, 0);
        revoke_in_record(&mut record, "live", 5_000, 0);
        assert!(record_revokes(&record, "old", 10));
        assert!(!record_revokes(&record, "other", 10));
        // A later change prunes what expired.
        revoke_in_record(&mut record, "new", 9_000, 2_000);
        let ids: Vec<&str> = record
            .revoked_tokens
            .iter()
            .map(|t| t.token_id.as_str())
            .collect();
        assert_eq!(ids, ["live", "new"]);
        record.sessions_valid_after_ms = 500;
        assert!(record_revokes(&record, "anything", 499));
        assert!(!record_revokes(&record, "anything", 500));
    }

    #[test]
    fn emails_are_one_address_whatever_their_unicode_form_or_case() {
        assert_eq!(normalize_email(" Alice@Example.COM "), "alice@example.com");
        // Full-width letters and at sign (NFKC folds them to ASCII).
        assert_eq!(
            normalize_email("\u{FF21}lice\u{FF20}example.com"),
            "alice@example.com"
        );
        assert_eq!(
            email_key("ALICE@example.com"),
            email_key("alice@example.com")
        );
    }

    #[test]
    fn keys_are_case_insensitive_and_kv_safe() {
        assert_eq!(username_key("LoopMaker"), "username.loopmaker");
        assert_eq!(email_key("A@B.io"), email_key("a@b.io"));
        assert!(is_valid_key(&email_key("someone+tag@example.com")));
        assert!(!is_valid_key("username.has space"));
        assert!(!is_valid_key("username."));
    }
}
