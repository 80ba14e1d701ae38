//! Sending a batch of operations to Gorse: users, then items, then feedback upserts (one
//! request each), then deletions one by one. Every operation is idempotent, so a batch may be
//! sent again whole (after a crash, from the dead-letter list) without harm.

use sidechain_gorse::{Feedback, GorseClient, GorseError, Item, User};
use tracing::Instrument as _;

use crate::mapping::GorseOp;

/// Delivers operations to Gorse.
#[derive(Debug, Clone)]
pub struct Delivery {
    gorse: GorseClient,
}

impl Delivery {
    /// Delivery through `gorse`.
    pub fn new(gorse: GorseClient) -> Self {
        Self { gorse }
    }

    /// The client (for health checks and the breaker).
    pub fn gorse(&self) -> &GorseClient {
        &self.gorse
    }

    /// Sends every operation; stops at the first failure.
    pub async fn deliver(&self, ops: &[GorseOp]) -> Result<(), GorseError> {
        let span = tracing::info_span!("gorse deliver", ops = ops.len());
        self.deliver_inner(ops).instrument(span).await
    }

    async fn deliver_inner(&self, ops: &[GorseOp]) -> Result<(), GorseError> {
        let mut users: Vec<User> = Vec::new();
        let mut items: Vec<Item> = Vec::new();
        let mut feedback: Vec<Feedback> = Vec::new();
        for op in ops {
            match op {
                GorseOp::UpsertUser(user) => users.push(user.clone()),
                GorseOp::UpsertItem(item) => items.push(item.clone()),
                GorseOp::UpsertFeedback(row) => feedback.push(row.clone()),
                GorseOp::DeleteFeedback { .. } | GorseOp::DeleteItem { .. } => {}
            }
        }
        if !users.is_empty() {
            self.gorse.insert_users(&users).await?;
        }
        if !items.is_empty() {
            self.gorse.insert_items(&items).await?;
        }
        if !feedback.is_empty() {
            self.gorse.put_feedback(&feedback).await?;
        }
        for op in ops {
            match op {
                GorseOp::DeleteFeedback {
                    feedback_type,
                    user_id,
                    item_id,
                } => {
                    self.gorse
                        .delete_feedback(feedback_type, user_id, item_id)
                        .await?;
                }
                GorseOp::DeleteItem { item_id } => {
                    self.gorse.delete_item(item_id).await?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}
