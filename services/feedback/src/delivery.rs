//! Sending a batch of operations to Gorse: users, then items, then feedback upserts (one
//! request each), then deletions one by one. Every operation is idempotent, so a batch may be
//! sent again whole (after a crash, from the dead-letter list) without harm.
//!
//! Gorse refuses a whole request for one bad row (400, e.g. invalid labels: server/rest.go
//! `insertItems`). On such a refusal the rows are split in halves and sent again, down to
//! single rows, so every other row still lands and only the refused ones are returned (to be
//! parked).
//!
//! Gorse is configured with `auto_insert_item = false` (compose/gorse/config.toml), so feedback
//! on an item it lacks is dropped while the reply still counts it (storage/data/sql.go
//! `BatchInsertFeedback`). Before feedback is sent, every item it points at that is neither in
//! the batch nor known to this process is looked up (`GET /api/item/{id}`). A missing post is
//! asked of the read models ([`crate::reconcile`]): written in full if they hold it, its
//! feedback dropped if it was deleted, and otherwise written as a hidden placeholder
//! ([`crate::mapping::placeholder_item`]) that the reconciliation resolves later. Only a 404
//! leads to a write, so a real item's categories and labels are not overwritten (see
//! [`crate::reconcile`] for the race between instances).

use std::collections::{HashMap, HashSet};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use sidechain_gorse::{Feedback, GorseClient, GorseError, Item, RowAffected, User};
use tracing::Instrument as _;

use crate::mapping::{GorseOp, placeholder_item};
use crate::reconcile::{Reconciler, Resolution};

/// Item ids remembered as present in Gorse; past this many the least used are forgotten (a few
/// extra lookups, never a wrong answer that matters: a lookup only avoids a placeholder).
const KNOWN_ITEMS_CAP: u64 = 100_000;

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
    /// Items this process delivered or saw in Gorse (bounded; cloning shares it).
    known_items: moka::sync::Cache<String, ()>,
    /// Hidden placeholders written for items Gorse lacked.
    placeholders: Counter,
    /// Resolves missing posts from the read models (none: always a placeholder).
    reconciler: Option<Reconciler>,
}

impl Delivery {
    /// Delivery through `gorse`; registers its placeholder counter.
    pub fn new(gorse: GorseClient, registry: &mut Registry) -> Self {
        let placeholders = Counter::default();
        registry.register(
            "gorse_placeholder_items",
            "Hidden placeholder items written before feedback on an item Gorse did not have \
             (a post from before Gorse, or whose upsert was lost); each stays hidden until the \
             post's own upsert reaches Gorse",
            placeholders.clone(),
        );
        Self {
            gorse,
            known_items: moka::sync::Cache::new(KNOWN_ITEMS_CAP),
            placeholders,
            reconciler: None,
        }
    }

    /// Missing posts are asked of the read models before a placeholder is written.
    pub fn with_reconciler(mut self, reconciler: Reconciler) -> Self {
        self.reconciler = Some(reconciler);
        self
    }

    fn remember<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        for id in ids {
            self.known_items.insert(id.to_owned(), ());
        }
    }

    /// Adds a placeholder to `items` for every item of `feedback` Gorse does not have. Feedback
    /// on an item whose lookup Gorse refused is taken out of `feedback` and returned (it would
    /// be dropped silently otherwise).
    async fn ensure_items(
        &self,
        items: &mut Vec<Item>,
        feedback: &mut Vec<Feedback>,
    ) -> Result<Vec<(GorseOp, String)>, GorseError> {
        let mut settled: HashSet<String> = items.iter().map(|i| i.item_id.clone()).collect();
        let mut unconfirmed: HashMap<String, String> = HashMap::new();
        // Items Gorse lacks, with the timestamp of their first feedback.
        let mut missing: Vec<(String, String)> = Vec::new();
        for row in feedback.iter() {
            let id = &row.item_id;
            if settled.contains(id) || self.known_items.contains_key(id) {
                continue;
            }
            settled.insert(id.clone());
            match self.gorse.item_exists(id).await {
                Ok(true) => self.remember([id.as_str()]),
                Ok(false) => missing.push((id.clone(), row.timestamp.clone())),
                Err(GorseError::Rejected { body, .. }) => {
                    unconfirmed.insert(id.clone(), body);
                }
                Err(err) => return Err(err),
            }
        }
        let deleted = self.write_missing(missing, items).await;
        feedback.retain(|row| !deleted.contains(&row.item_id));
        let mut refused = Vec::new();
        feedback.retain(|row| match unconfirmed.get(&row.item_id) {
            Some(why) => {
                refused.push((GorseOp::UpsertFeedback(row.clone()), why.clone()));
                false
            }
            None => true,
        });
        Ok(refused)
    }

    /// Adds to `items` what Gorse lacks: a post the read models hold in full, anything else
    /// as a hidden placeholder (tracked for the reconciliation). Returns the posts the read
    /// models know as deleted: their feedback is not sent (Gorse deleted the item and its
    /// feedback).
    async fn write_missing(
        &self,
        missing: Vec<(String, String)>,
        items: &mut Vec<Item>,
    ) -> HashSet<String> {
        let mut deleted = HashSet::new();
        if missing.is_empty() {
            return deleted;
        }
        let posts: Vec<String> = missing
            .iter()
            .map(|(id, _)| id.clone())
            .filter(|id| !id.starts_with("user:"))
            .collect();
        let mut found = match &self.reconciler {
            Some(reconciler) if !posts.is_empty() => {
                reconciler.resolve(&posts).await.unwrap_or_else(|err| {
                    tracing::warn!(error = %err, "cannot ask the read models; writing placeholders");
                    HashMap::new()
                })
            }
            _ => HashMap::new(),
        };
        let mut tracked = Vec::new();
        for (id, timestamp) in missing {
            match found.remove(&id) {
                Some(Resolution::Post(item)) => {
                    tracing::info!(item = %id, "item unknown to Gorse; writing it from the read models before its feedback");
                    items.push(*item);
                }
                Some(Resolution::Deleted) => {
                    tracing::info!(item = %id, "feedback on a deleted post; not sent");
                    deleted.insert(id);
                }
                None => {
                    tracing::info!(item = %id, "item unknown to Gorse; sending a hidden placeholder before its feedback");
                    items.push(placeholder_item(&id, &timestamp));
                    self.placeholders.inc();
                    if !id.starts_with("user:") {
                        tracked.push(id);
                    }
                }
            }
        }
        if let Some(reconciler) = &self.reconciler {
            let upserted = posts.len().saturating_sub(deleted.len() + tracked.len());
            reconciler.resolved_at_lookup(upserted, deleted.len());
            if let Err(err) = reconciler.track(&tracked).await {
                tracing::warn!(error = %err, items = tracked.len(), "cannot remember placeholders for the reconciliation (Redis)");
            }
        }
        deleted
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
        let unconfirmed = self.ensure_items(&mut items, &mut feedback).await?;
        let refused_items = isolate(gorse, &items).await?;
        self.remember(
            items
                .iter()
                .map(|i| i.item_id.as_str())
                .filter(|id| !refused_items.iter().any(|(i, _)| i.item_id == *id)),
        );
        for (item, why) in refused_items {
            refused.push((GorseOp::UpsertItem(item), why));
        }
        refused.extend(unconfirmed);
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
                GorseOp::DeleteItem { item_id } => {
                    self.known_items.invalidate(item_id);
                    gorse.delete_item(item_id).await
                }
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
