//! The batch being assembled: Gorse operations (one per row, the latest wins) and the stream
//! messages to acknowledge once the batch is delivered or dead-lettered.
//!
//! Full at `GORSE_BATCH_SIZE` messages; due `GORSE_BATCH_TIMEOUT` after its first message.
//! Generic over the acknowledgement handle so the rules are tested without NATS.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::mapping::{GorseOp, OpKey};

/// Operations and acknowledgement handles accumulated since the last flush.
#[derive(Debug)]
pub struct Batch<A> {
    ops: Vec<GorseOp>,
    index: HashMap<OpKey, usize>,
    acks: Vec<A>,
    started: Option<Instant>,
    capacity: usize,
    timeout: Duration,
}

/// A batch taken for delivery.
#[derive(Debug)]
pub struct Taken<A> {
    /// Operations in arrival order (coalesced).
    pub ops: Vec<GorseOp>,
    /// Handles of every message that contributed.
    pub acks: Vec<A>,
}

impl<A> Batch<A> {
    /// An empty batch of at most `capacity` messages, due `timeout` after its first.
    pub fn new(capacity: usize, timeout: Duration) -> Self {
        Self {
            ops: Vec::new(),
            index: HashMap::new(),
            acks: Vec::with_capacity(capacity),
            started: None,
            capacity: capacity.max(1),
            timeout,
        }
    }

    /// Adds a message's operations.
    pub fn add(&mut self, ops: Vec<GorseOp>, ack: A) {
        if self.acks.is_empty() {
            self.started = Some(Instant::now());
        }
        for op in ops {
            match self.index.get(&op.key()) {
                Some(&at) => self.ops[at] = op,
                None => {
                    self.index.insert(op.key(), self.ops.len());
                    self.ops.push(op);
                }
            }
        }
        self.acks.push(ack);
    }

    /// Messages in the batch.
    pub fn len(&self) -> usize {
        self.acks.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.acks.is_empty()
    }

    /// Whether it reached its size.
    pub fn is_full(&self) -> bool {
        self.acks.len() >= self.capacity
    }

    /// When it must be sent (`None` while empty).
    pub fn due(&self) -> Option<Instant> {
        self.started.map(|started| started + self.timeout)
    }

    /// Empties the batch.
    pub fn take(&mut self) -> Taken<A> {
        self.index.clear();
        self.started = None;
        Taken {
            ops: std::mem::take(&mut self.ops),
            acks: std::mem::replace(&mut self.acks, Vec::with_capacity(self.capacity)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sidechain_gorse::Feedback;

    fn like(user: &str, item: &str) -> GorseOp {
        GorseOp::UpsertFeedback(Feedback {
            feedback_type: "like".into(),
            user_id: user.into(),
            item_id: item.into(),
            value: 1.0,
            timestamp: String::new(),
            comment: String::new(),
        })
    }

    fn unlike(user: &str, item: &str) -> GorseOp {
        GorseOp::DeleteFeedback {
            feedback_type: "like".into(),
            user_id: user.into(),
            item_id: item.into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn it_is_full_at_capacity_and_due_after_the_timeout_from_its_first_message() {
        let mut batch = Batch::new(3, Duration::from_secs(5));
        assert_eq!(batch.due(), None);
        batch.add(vec![like("u", "a")], 1);
        let due = batch.due().expect("due once non-empty");
        tokio::time::advance(Duration::from_secs(2)).await;
        batch.add(vec![like("u", "b")], 2);
        assert_eq!(
            batch.due(),
            Some(due),
            "the clock starts at the first message"
        );
        assert!(!batch.is_full());
        batch.add(vec![], 3);
        assert!(batch.is_full());
        let taken = batch.take();
        assert_eq!(taken.acks, vec![1, 2, 3]);
        assert_eq!(taken.ops.len(), 2);
        assert!(batch.is_empty());
        assert_eq!(batch.due(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_latest_operation_on_a_row_wins() {
        let mut batch = Batch::new(10, Duration::from_secs(5));
        batch.add(vec![like("u", "a")], ());
        batch.add(vec![like("v", "a")], ());
        batch.add(vec![unlike("u", "a")], ());
        let taken = batch.take();
        assert_eq!(taken.ops, vec![unlike("u", "a"), like("v", "a")]);
        assert_eq!(taken.acks.len(), 3, "every message is acknowledged");
    }
}
