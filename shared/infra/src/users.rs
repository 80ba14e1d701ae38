//! User accounts, stored durably in the NATS KV bucket `users` (owned by the edge).
//!
//! Keys (KV keys allow only `[-/_=.a-zA-Z0-9]`, hence the hashed email):
//! - `user.<uuid>` → the `UserRecord` (protobuf) without its secrets: the cache service reads
//!   it for session checks (sessions-valid-after epoch, signed-out tokens, names)
//! - `credential.<uuid>` → the `Credential` (email, password hash): the edge's alone; the NATS
//!   permissions let no other identity read it (`crate::identity`)
//! - `username.<lower-case name>` → user id: the claim that makes usernames unique
//! - `email.<hex sha256 of lower-case email>` → user id: same for emails
//!
//! In memory a `UserRecord` is whole ([`UserStore::by_id`] joins the halves). Records written
//! before the split carry their secrets in `user.<uuid>`; they are moved to `credential.<uuid>`
//! on the account's next change (sign-out, password change) or sign-in.
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
use sidechain_events::rpc::{Credential, RevokedToken, UserRecord};
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

fn credential_key(id: UserId) -> String {
    format!("credential.{id}")
}

/// The secret half of `record`.
fn credential_of(record: &UserRecord) -> Credential {
    Credential {
        email: record.email.clone(),
        password_hash: record.password_hash.clone(),
    }
}

/// `record` as stored under `user.<id>`: without its secrets.
fn without_secrets(record: &UserRecord) -> UserRecord {
    UserRecord {
        email: String::new(),
        password_hash: String::new(),
        ..record.clone()
    }
}

/// Whether a stored `user.<id>` record still holds secrets (written before the split).
fn holds_secrets(record: &UserRecord) -> bool {
    !record.email.is_empty() || !record.password_hash.is_empty()
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

    /// The bucket, refusing at once while NATS is disconnected: the client would otherwise
    /// buffer a write and deliver it after the reconnect, when the caller has long been told it
    /// failed — a registration answered 503 whose username claim appears a minute later.
    async fn kv(&self) -> Result<&kv::Store, StoreError> {
        if !crate::nats::is_connected(&self.js.client()) {
            return Err(StoreError("NATS is not connected".to_owned()));
        }
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
        // The secret half first: a `user.<id>` record never exists without its credential.
        let kv = self.kv().await?;
        let stored = async {
            let id: UserId = record.id.parse().map_err(store_error)?;
            kv.put(
                credential_key(id),
                Bytes::from(credential_of(record).encode_to_vec()),
            )
            .await
            .map_err(store_error)?;
            kv.put(
                user_key(id),
                Bytes::from(without_secrets(record).encode_to_vec()),
            )
            .await
            .map_err(store_error)
        };
        if let Err(err) = stored.await {
            self.unregister(record).await;
            return Err(err.into());
        }
        Ok(())
    }

    /// Undoes [`Self::register`] (when the registration event could not be stored).
    pub async fn unregister(&self, record: &UserRecord) {
        if let Ok(id) = record.id.parse::<UserId>() {
            self.release(&user_key(id)).await;
            self.release(&credential_key(id)).await;
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

    /// The account with this id, whole (with its email and password hash).
    pub async fn by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        Ok(self.load(id).await?.map(|(record, _)| record))
    }

    /// The account joined with its credential, and whether `user.<id>` still holds the
    /// secrets itself (a record from before the split, whose own secrets then count unless a
    /// credential exists).
    async fn load(&self, id: UserId) -> Result<Option<(UserRecord, bool)>, StoreError> {
        let kv = self.kv().await?;
        let (record, credential) = tokio::join!(kv.get(user_key(id)), kv.get(credential_key(id)));
        let Some(record) = record.map_err(store_error)? else {
            return Ok(None);
        };
        let mut record = UserRecord::decode(record).map_err(store_error)?;
        let legacy = holds_secrets(&record);
        if let Some(credential) = credential.map_err(store_error)? {
            let credential = Credential::decode(credential).map_err(store_error)?;
            record.email = credential.email;
            record.password_hash = credential.password_hash;
        }
        Ok(Some((record, legacy)))
    }

    /// The account with this id without its secrets: what session checks and lookups need
    /// (one read instead of two).
    pub async fn account(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        let Some(bytes) = self
            .kv()
            .await?
            .get(user_key(id))
            .await
            .map_err(store_error)?
        else {
            return Ok(None);
        };
        UserRecord::decode(bytes)
            .map(|record| Some(without_secrets(&record)))
            .map_err(store_error)
    }

    /// Replaces the account's password hash (its other fields are untouched).
    pub async fn set_password_hash(&self, id: UserId, hash: &str) -> Result<(), StoreError> {
        let Some(mut record) = self.by_id(id).await? else {
            return Err(StoreError(format!("account {id} vanished")));
        };
        record.password_hash = hash.to_owned();
        self.kv()
            .await?
            .put(
                credential_key(id),
                Bytes::from(credential_of(&record).encode_to_vec()),
            )
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Changes an account's record with `change` (compare-and-set on its revision, retried when
    /// another writer got there first), so concurrent changes (a password change and a sign-out
    /// everywhere) never undo each other. `change` sees and returns the record without its
    /// secrets (the password has its own [`Self::set_password_hash`]); a record from before the
    /// split has them moved to `credential.<id>` on the way. `Ok(None)`: no such account.
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
            let stored = UserRecord::decode(entry.value).map_err(store_error)?;
            if holds_secrets(&stored) {
                self.move_secrets(id, &stored).await?;
            }
            let mut record = without_secrets(&stored);
            change(&mut record);
            debug_assert!(
                !holds_secrets(&record),
                "secrets change through set_password_hash"
            );
            let record = without_secrets(&record);
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

    /// Writes the secrets of a record from before the split to `credential.<id>`, unless a
    /// credential is there already (then it is the newer one).
    async fn move_secrets(&self, id: UserId, stored: &UserRecord) -> Result<(), StoreError> {
        let credential = Bytes::from(credential_of(stored).encode_to_vec());
        match self
            .kv()
            .await?
            .create(credential_key(id), credential)
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if err.kind() == kv::CreateErrorKind::AlreadyExists => Ok(()),
            Err(err) => Err(store_error(err)),
        }
    }

    /// The account whose username or email is `login` (case-insensitive), whole. Signing in
    /// with an account from before the split moves its secrets out of `user.<id>`.
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
        let Some((record, legacy)) = self.load(id).await? else {
            return Ok(None);
        };
        if legacy && let Err(err) = self.modify(id, |_| {}).await {
            tracing::warn!(user_id = %id, error = %err, "could not move an account's secrets yet");
        }
        Ok(Some(record))
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
