//! Sending a batch of operations to Gorse: users, then items, then feedback upserts (one
//! request each), then deletions one by one. Every operation is idempotent, so a batch may be
//! sent again whole (after a crash, from the dead-letter list) without harm.
//!
//! Gorse refuses a whole request for one bad row (400, e.g. invalid labels: server/rest.go
//! `insertItems`). On such a refusal the rows are split in halves and sent again, down to
//! single rows, so every other row still lands and only the refused ones are returned (to be
//! parked).

use sidechain_gorse::{Feedback, GorseClient, GorseError, Item, RowAffected, User};
use tracing::Instrument as _;

use crate::mapping::GorseOp;

/// Operations Gorse refused (4xx other than 401/403) while the rest of the batch landed.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    /// The refused operations, in batch order within each kind.
    pub ops: Vec<GorseOp>,
    /// Gorse's explanation for the first of them.
    pub reason: String,
}

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

    /// Sends every operation. `Ok(None)`: Gorse took them all; `Ok(Some(refused))`: Gorse took
    /// all but `refused`; `Err`: Gorse could not be used (stops at the first such failure).
    pub async fn deliver(&self, ops: &[GorseOp]) -> Result<Option<Refused>, GorseError> {
        let span = tracing::info_span!("gorse deliver", ops = ops.len());
        self.deliver_inner(ops).instrument(span).await
    }

    async fn deliver_inner(&self, ops: &[GorseOp]) -> Result<Option<Refused>, GorseError> {
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
        let mut refused: Vec<(GorseOp, String)> = Vec::new();
        let gorse = &self.gorse;
        for (user, why) in isolate(gorse, &users).await? {
            refused.push((GorseOp::UpsertUser(user), why));
        }
        for (item, why) in isolate(gorse, &items).await? {
            refused.push((GorseOp::UpsertItem(item), why));
        }
        for (row, why) in isolate(gorse, &feedback).await? {
            refused.push((GorseOp::UpsertFeedback(row), why));
        }
        for op in ops {
            let result = match op {
                GorseOp::DeleteFeedback {
                    feedback_type,
                    user_id,
                    item_id,
                } => gorse.delete_feedback(feedback_type, user_id, item_id).await,
                GorseOp::DeleteItem { item_id } => gorse.delete_item(item_id).await,
                _ => continue,
            };
            match result {
                Ok(_) => {}
                Err(GorseError::Rejected { body, .. }) => refused.push((op.clone(), body)),
                Err(err) => return Err(err),
            }
        }
        let Some(reason) = refused.first().map(|(_, why)| why.clone()) else {
            return Ok(None);
        };
        tracing::warn!(
            refused = refused.len(),
            reason,
            "Gorse refused part of a batch; the rest was delivered"
        );
        Ok(Some(Refused {
            ops: refused.into_iter().map(|(op, _)| op).collect(),
            reason,
        }))
    }
}

/// Rows written to Gorse in one request per batch.
trait Upsert: Clone + Sync + Sized {
    fn send<'a>(
        gorse: &'a GorseClient,
        rows: &'a [Self],
    ) -> impl Future<Output = Result<RowAffected, GorseError>> + Send + 'a;
}

impl Upsert for User {
    fn send<'a>(
        gorse: &'a GorseClient,
        rows: &'a [Self],
    ) -> impl Future<Output = Result<RowAffected, GorseError>> + Send + 'a {
        gorse.insert_users(rows)
    }
}

impl Upsert for Item {
    fn send<'a>(
        gorse: &'a GorseClient,
        rows: &'a [Self],
    ) -> impl Future<Output = Result<RowAffected, GorseError>> + Send + 'a {
        gorse.insert_items(rows)
    }
}

impl Upsert for Feedback {
    fn send<'a>(
        gorse: &'a GorseClient,
        rows: &'a [Self],
    ) -> impl Future<Output = Result<RowAffected, GorseError>> + Send + 'a {
        gorse.put_feedback(rows)
    }
}

/// Sends `rows`; when Gorse refuses a request (`Rejected`), sends each half again, down to
/// single rows. Returns the rows refused on their own, with Gorse's reason, in order.
async fn isolate<T: Upsert>(
    gorse: &GorseClient,
    rows: &[T],
) -> Result<Vec<(T, String)>, GorseError> {
    let mut refused = Vec::new();
    if rows.is_empty() {
        return Ok(refused);
    }
    // Ranges still to send, the next one last.
    let mut pending = vec![(0, rows.len())];
    while let Some((start, end)) = pending.pop() {
        match T::send(gorse, &rows[start..end]).await {
            Ok(_) => {}
            Err(GorseError::Rejected { body, .. }) if end - start == 1 => {
                refused.push((rows[start].clone(), body));
            }
            Err(GorseError::Rejected { .. }) => {
                let middle = start + (end - start) / 2;
                pending.push((middle, end));
                pending.push((start, middle));
            }
            Err(err) => return Err(err),
        }
    }
    Ok(refused)
}
