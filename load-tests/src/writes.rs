//! `--record-writes`: one JSON line per write of the workload (warm-up included), successful
//! or not, appended to a file by one task fed through a bounded channel.
//!
//! The chaos suite reads it to check that every acknowledged write reached its consumers
//! and that failures during an outage were 503s with `Retry-After`, never 500s.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncWriteExt as _, BufWriter};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Records waiting to be written at most; workers wait when the file falls behind (after
/// their latency was taken).
const QUEUE: usize = 8192;

/// One write and how it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteRecord {
    /// `like`, `play`, `comment`, `follow` or `post`.
    pub op: String,
    /// HTTP status; `null` when no answer came (see `error`).
    pub status: Option<u16>,
    /// `connect`, `timeout` or `transport` when no answer came.
    pub error: Option<String>,
    /// Whether the answer had a `Retry-After` header.
    pub retry_after: bool,
    /// `event_id` of the answer body, when present (interactions).
    pub event_id: Option<String>,
    /// The post (like, play, comment) or user (follow) acted on; the new post's id for `post`.
    pub target_id: Option<String>,
    /// The `id` of a created post or comment.
    pub id: Option<String>,
    /// The acting user.
    pub user_id: String,
    /// When the request was sent (its scheduled time with `--rate`).
    pub at: DateTime<Utc>,
    /// How long until the answer, in ms.
    pub latency_ms: f64,
    /// `warmup` or `measure`.
    pub phase: String,
}

/// The sending side, cloned into every worker.
#[derive(Debug, Clone)]
pub struct WriteLog {
    tx: mpsc::Sender<WriteRecord>,
}

impl WriteLog {
    /// Queues a record (waits if the queue is full). A closed log (after a file error,
    /// reported at the end) drops it.
    pub async fn record(&self, record: WriteRecord) {
        let _ = self.tx.send(record).await;
    }
}

/// The writing task; [`WriterTask::finish`] waits for it once every [`WriteLog`] is dropped.
#[derive(Debug)]
pub struct WriterTask {
    path: PathBuf,
    handle: JoinHandle<anyhow::Result<u64>>,
}

impl WriterTask {
    /// Waits until every queued record is on disk; answers how many were written.
    pub async fn finish(self) -> anyhow::Result<u64> {
        self.handle
            .await
            .context("the write log task panicked")?
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// Opens `path` for appending (creating it and its directory) and starts the writer.
pub async fn open(path: &Path) -> anyhow::Result<(WriteLog, WriterTask)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir)
            .await
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let (tx, mut rx) = mpsc::channel::<WriteRecord>(QUEUE);
    let handle = tokio::spawn(async move {
        let mut out = BufWriter::new(file);
        let mut written = 0_u64;
        let mut line = Vec::with_capacity(512);
        while let Some(record) = rx.recv().await {
            line.clear();
            serde_json::to_writer(&mut line, &record)?;
            line.push(b'\n');
            out.write_all(&line).await?;
            written += 1;
        }
        out.flush().await?;
        out.into_inner().sync_all().await?;
        Ok::<_, anyhow::Error>(written)
    });
    Ok((
        WriteLog { tx },
        WriterTask {
            path: path.to_owned(),
            handle,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_one_json_object_with_the_documented_fields() {
        let record = WriteRecord {
            op: "like".into(),
            status: Some(503),
            error: None,
            retry_after: true,
            event_id: None,
            target_id: Some("p1".into()),
            id: None,
            user_id: "u1".into(),
            at: DateTime::parse_from_rfc3339("2026-01-02T03:04:05.678Z")
                .expect("time")
                .with_timezone(&Utc),
            latency_ms: 1.5,
            phase: "measure".into(),
        };
        let line = serde_json::to_string(&record).expect("json");
        assert!(!line.contains('\n'));
        let value: serde_json::Value = serde_json::from_str(&line).expect("parses");
        for field in [
            "op",
            "status",
            "event_id",
            "target_id",
            "user_id",
            "at",
            "retry_after",
        ] {
            assert!(value.get(field).is_some(), "{field} missing");
        }
        assert_eq!(value["event_id"], serde_json::Value::Null);
        assert_eq!(value["at"], "2026-01-02T03:04:05.678Z");
        let back: WriteRecord = serde_json::from_str(&line).expect("round trip");
        assert_eq!(back, record);
    }
}
