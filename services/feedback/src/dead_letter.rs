//! The Redis dead-letter list `gorse_failed_feedback`: batches Gorse could not take (and
//! undecodable messages), kept until they can be delivered.
//!
//! Keys (all in one Redis Cluster slot, so `LMOVE` between them is atomic everywhere):
//! - `gorse_failed_feedback` — entries waiting, oldest at the head (JSON, see [`DeadLetter`]).
//! - `{gorse_failed_feedback}:processing` — the entry being sent by the flusher.
//! - `{gorse_failed_feedback}:parked` — entries Gorse refused (4xx) or that cannot be read:
//!   kept for an operator, never retried automatically.
//! - `{gorse_failed_feedback}:flush_lock` — one flusher at a time across instances.
//!
//! A flush moves one entry at a time to `processing` before sending it and removes it only
//! after Gorse accepted it, so a crash mid-flush loses nothing: the next flusher moves what it
//! finds in `processing` back to the head first. Sending an entry twice is harmless (every
//! Gorse operation is idempotent).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine as _;
use redis::AsyncCommands as _;
use serde::{Deserialize, Serialize};
use sidechain_infra::redis::RedisConn;

use crate::delivery::Delivery;
use crate::mapping::GorseOp;
use crate::metrics::FeedbackMetrics;

/// The list of entries waiting.
pub const LIST: &str = "gorse_failed_feedback";
/// The entry being flushed.
pub const PROCESSING: &str = "{gorse_failed_feedback}:processing";
/// Entries kept for an operator.
pub const PARKED: &str = "{gorse_failed_feedback}:parked";
/// The flusher lock.
const LOCK: &str = "{gorse_failed_feedback}:flush_lock";
/// Lock lifetime, renewed after every entry.
const LOCK_TTL: Duration = Duration::from_secs(60);

/// One entry of the list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeadLetter {
    /// Operations Gorse could not take.
    Batch {
        /// Why.
        reason: String,
        /// When (RFC 3339).
        failed_at: String,
        /// The operations, in order.
        ops: Vec<GorseOp>,
    },
    /// A message that is not a valid event.
    Poison {
        /// Why it could not be decoded.
        reason: String,
        /// When (RFC 3339).
        failed_at: String,
        /// Its subject.
        subject: String,
        /// Its stream sequence.
        stream_sequence: u64,
        /// Its bytes.
        payload_base64: String,
    },
}

impl DeadLetter {
    /// A batch entry.
    pub fn batch(ops: Vec<GorseOp>, reason: &str) -> Self {
        Self::Batch {
            reason: reason.to_owned(),
            failed_at: now(),
            ops,
        }
    }

    /// A poison-message entry.
    pub fn poison(reason: &str, subject: &str, stream_sequence: u64, payload: &[u8]) -> Self {
        Self::Poison {
            reason: reason.to_owned(),
            failed_at: now(),
            subject: subject.to_owned(),
            stream_sequence,
            payload_base64: base64::engine::general_purpose::STANDARD.encode(payload),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            DeadLetter::Batch { .. } => "batch",
            DeadLetter::Poison { .. } => "poison",
        }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// What a flush did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Entries delivered to Gorse.
    pub delivered: u64,
    /// Entries moved to the parked list.
    pub parked: u64,
    /// Entries left waiting (Gorse failed again, or another instance is flushing).
    pub remaining: u64,
}

/// The dead-letter list of one feedback instance.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    redis: RedisConn,
    token: String,
    backlog: Arc<AtomicBool>,
    flushing: Arc<tokio::sync::Mutex<()>>,
    metrics: FeedbackMetrics,
}

impl DeadLetters {
    /// The list in `redis`.
    pub fn new(redis: RedisConn, metrics: FeedbackMetrics) -> Self {
        Self {
            redis,
            token: uuid::Uuid::new_v4().to_string(),
            // Assume a backlog until a flush finds the list empty: entries may predate us.
            backlog: Arc::new(AtomicBool::new(true)),
            flushing: Arc::default(),
            metrics,
        }
    }

    /// Whether entries may be waiting (new batches must queue behind them to keep order).
    pub fn has_backlog(&self) -> bool {
        self.backlog.load(Ordering::Relaxed)
    }

    /// Appends an entry.
    pub async fn push(&self, entry: &DeadLetter) -> redis::RedisResult<()> {
        let json = encode(entry)?;
        let mut redis = self.redis.clone();
        let _: u64 = redis.rpush(LIST, json).await?;
        self.backlog.store(true, Ordering::Relaxed);
        self.metrics.dead_lettered(entry.kind());
        Ok(())
    }

    /// Parks an entry at once: operations Gorse refused on their own (a 4xx other than
    /// 401/403), which retrying would not change.
    pub async fn park_refused(&self, entry: &DeadLetter) -> redis::RedisResult<()> {
        let json = encode(entry)?;
        let mut redis = self.redis.clone();
        let _: u64 = redis.rpush(PARKED, json).await?;
        self.metrics.parked();
        Ok(())
    }

    /// Entries waiting.
    pub async fn len(&self) -> redis::RedisResult<u64> {
        let mut redis = self.redis.clone();
        redis.llen(LIST).await
    }

    /// Entries parked for an operator.
    pub async fn parked_len(&self) -> redis::RedisResult<u64> {
        let mut redis = self.redis.clone();
        redis.llen(PARKED).await
    }

    /// Sends waiting entries to Gorse, oldest first, until the list is empty or Gorse fails.
    pub async fn flush(&self, delivery: &Delivery) -> redis::RedisResult<FlushReport> {
        let Ok(_local) = self.flushing.try_lock() else {
            return Ok(FlushReport::default());
        };
        let mut redis = self.redis.clone();
        let locked: Option<String> = redis::cmd("SET")
            .arg(LOCK)
            .arg(&self.token)
            .arg("NX")
            .arg("PX")
            .arg(LOCK_TTL.as_millis() as u64)
            .query_async(&mut redis)
            .await?;
        if locked.is_none() {
            tracing::debug!("another instance is flushing the dead-letter list");
            return Ok(FlushReport::default());
        }
        let result = self.flush_locked(&mut redis, delivery).await;
        let release = redis::Script::new(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
        );
        let _: redis::RedisResult<i64> = release
            .key(LOCK)
            .arg(&self.token)
            .invoke_async(&mut redis)
            .await;
        let report = result?;
        if report.delivered + report.parked > 0 {
            tracing::info!(
                delivered = report.delivered,
                parked = report.parked,
                remaining = report.remaining,
                "dead-letter flush"
            );
        }
        Ok(report)
    }

    async fn flush_locked(
        &self,
        redis: &mut RedisConn,
        delivery: &Delivery,
    ) -> redis::RedisResult<FlushReport> {
        // Leftovers of a flusher that crashed go back to the head, newest last, so the list
        // keeps its order.
        loop {
            let moved: Option<String> = redis
                .lmove(
                    PROCESSING,
                    LIST,
                    redis::Direction::Right,
                    redis::Direction::Left,
                )
                .await?;
            if moved.is_none() {
                break;
            }
            tracing::warn!("restored a dead-letter entry left by an interrupted flush");
        }
        let mut report = FlushReport::default();
        loop {
            let entry: Option<String> = redis
                .lmove(
                    LIST,
                    PROCESSING,
                    redis::Direction::Left,
                    redis::Direction::Right,
                )
                .await?;
            let Some(entry) = entry else {
                self.backlog.store(false, Ordering::Relaxed);
                break;
            };
            match serde_json::from_str::<DeadLetter>(&entry) {
                Ok(DeadLetter::Batch { ops, .. }) => match delivery.deliver(&ops).await {
                    Ok(None) => {
                        let _: i64 = redis.lrem(PROCESSING, 1, &entry).await?;
                        report.delivered += 1;
                        self.metrics.dead_letter_flushed(ops.len());
                    }
                    Ok(Some(refused)) if refused.ops.len() == ops.len() => {
                        tracing::error!(
                            error = refused.reason,
                            "Gorse refused a dead-letter batch; parking it"
                        );
                        self.park(redis).await?;
                        report.parked += 1;
                    }
                    Ok(Some(refused)) => {
                        // The rest landed: only the refused operations are kept for an operator.
                        tracing::error!(
                            error = refused.reason,
                            refused = refused.ops.len(),
                            "Gorse refused part of a dead-letter batch; parking those operations"
                        );
                        let taken = ops.len() - refused.ops.len();
                        self.park_refused(&DeadLetter::batch(refused.ops, &refused.reason))
                            .await?;
                        let _: i64 = redis.lrem(PROCESSING, 1, &entry).await?;
                        report.delivered += 1;
                        report.parked += 1;
                        self.metrics.dead_letter_flushed(taken);
                    }
                    Err(err) => {
                        tracing::info!(error = %err, "Gorse still unavailable; stopping the flush");
                        let _: Option<String> = redis
                            .lmove(
                                PROCESSING,
                                LIST,
                                redis::Direction::Right,
                                redis::Direction::Left,
                            )
                            .await?;
                        report.remaining = self.len().await.unwrap_or(1);
                        break;
                    }
                },
                Ok(DeadLetter::Poison { .. }) | Err(_) => {
                    self.park(redis).await?;
                    report.parked += 1;
                }
            }
            let _: bool = redis.pexpire(LOCK, LOCK_TTL.as_millis() as i64).await?;
        }
        Ok(report)
    }

    async fn park(&self, redis: &mut RedisConn) -> redis::RedisResult<()> {
        let _: Option<String> = redis
            .lmove(
                PROCESSING,
                PARKED,
                redis::Direction::Right,
                redis::Direction::Right,
            )
            .await?;
        self.metrics.parked();
        Ok(())
    }
}

/// An entry as stored in the lists (JSON).
fn encode(entry: &DeadLetter) -> redis::RedisResult<String> {
    serde_json::to_string(entry).map_err(|e| {
        redis::RedisError::from((
            redis::ErrorKind::Client,
            "cannot encode entry",
            e.to_string(),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_tagged_json() {
        let entry = DeadLetter::poison("malformed protobuf", "events.like", 42, b"\x00\xff");
        let json = serde_json::to_value(&entry).expect("json");
        assert_eq!(json["kind"], "poison");
        assert_eq!(json["stream_sequence"], 42);
        assert_eq!(json["payload_base64"], "AP8=");
        let back: DeadLetter = serde_json::from_value(json).expect("parses");
        assert_eq!(back, entry);
    }
}
