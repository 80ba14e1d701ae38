//! The feedback service's metrics (all prefixed `sidechain_`).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// What became of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Gorse accepted it.
    Delivered,
    /// Stored in the dead-letter list.
    DeadLettered,
    /// Neither (Redis down too): its messages were not acknowledged and will come again.
    NotStored,
}

impl BatchOutcome {
    const fn as_str(self) -> &'static str {
        match self {
            BatchOutcome::Delivered => "delivered",
            BatchOutcome::DeadLettered => "dead_lettered",
            BatchOutcome::NotStored => "not_stored",
        }
    }
}

/// Metrics handles, cheap to clone.
#[derive(Debug, Clone)]
pub struct FeedbackMetrics {
    events: Family<EventLabels, Counter>,
    batches: Family<OutcomeLabels, Counter>,
    items_sent: Counter,
    batch_size: Histogram,
    /// Messages in the batch being assembled.
    pub batch_pending: Gauge,
    redeliveries: Counter,
    dead_letter_entries: Family<KindLabels, Counter>,
    dead_letter_flushed: Counter,
    parked: Counter,
    /// Entries waiting in `gorse_failed_feedback`.
    pub dead_letter_length: Gauge,
    /// Entries parked for an operator.
    pub parked_length: Gauge,
    /// Messages of the stream the consumer has not received yet.
    pub consumer_pending: Gauge,
    /// Messages delivered to the consumer and not acknowledged yet.
    pub consumer_ack_pending: Gauge,
    last_sync: Gauge<f64, AtomicU64>,
    /// 1 when Gorse reports ready and accepts the API key.
    pub gorse_healthy: Gauge,
    /// 1 when Gorse is ready but refuses the API key (401/403).
    pub gorse_unauthorized: Gauge,
    abandoned: Counter,
}

impl FeedbackMetrics {
    /// Registers every metric.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            events: Family::default(),
            batches: Family::default(),
            items_sent: Counter::default(),
            batch_size: Histogram::new([
                1.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 1000.0,
            ]),
            batch_pending: Gauge::default(),
            redeliveries: Counter::default(),
            dead_letter_entries: Family::default(),
            dead_letter_flushed: Counter::default(),
            parked: Counter::default(),
            dead_letter_length: Gauge::default(),
            parked_length: Gauge::default(),
            consumer_pending: Gauge::default(),
            consumer_ack_pending: Gauge::default(),
            last_sync: Gauge::default(),
            gorse_healthy: Gauge::default(),
            gorse_unauthorized: Gauge::default(),
            abandoned: Counter::default(),
        };
        registry.register(
            "feedback_events",
            "Events consumed, by kind and outcome (batched|ignored|poison)",
            metrics.events.clone(),
        );
        registry.register(
            "feedback_batches",
            "Batches settled, by outcome (delivered|dead_lettered|not_stored)",
            metrics.batches.clone(),
        );
        registry.register(
            "feedback_items_sent",
            "Gorse operations delivered from live batches",
            metrics.items_sent.clone(),
        );
        registry.register(
            "feedback_batch_size",
            "Messages per settled batch",
            metrics.batch_size.clone(),
        );
        registry.register(
            "feedback_batch_pending_messages",
            "Messages in the batch being assembled",
            metrics.batch_pending.clone(),
        );
        registry.register(
            "feedback_redeliveries",
            "Messages received again after a missed or negative acknowledgement",
            metrics.redeliveries.clone(),
        );
        registry.register(
            "feedback_dead_letter_entries",
            "Entries added to the dead-letter list, by kind (batch|poison)",
            metrics.dead_letter_entries.clone(),
        );
        registry.register(
            "feedback_dead_letter_flushed",
            "Gorse operations delivered from the dead-letter list",
            metrics.dead_letter_flushed.clone(),
        );
        registry.register(
            "feedback_dead_letter_parked",
            "Dead-letter entries parked for an operator (refused by Gorse or unreadable)",
            metrics.parked.clone(),
        );
        registry.register(
            "feedback_dead_letter_length",
            "Entries waiting in the dead-letter list gorse_failed_feedback",
            metrics.dead_letter_length.clone(),
        );
        registry.register(
            "feedback_dead_letter_parked_length",
            "Entries parked in {gorse_failed_feedback}:parked",
            metrics.parked_length.clone(),
        );
        registry.register(
            "feedback_consumer_pending_messages",
            "Stream messages not yet delivered to the feedback consumer",
            metrics.consumer_pending.clone(),
        );
        registry.register(
            "feedback_consumer_ack_pending_messages",
            "Messages delivered to the feedback consumer and not yet acknowledged",
            metrics.consumer_ack_pending.clone(),
        );
        registry.register_with_unit(
            "feedback_last_sync_timestamp",
            "When Gorse last accepted a batch (Unix time)",
            Unit::Seconds,
            metrics.last_sync.clone(),
        );
        registry.register(
            "gorse_healthy",
            "1 when Gorse reports ready and accepts the API key, 0 otherwise",
            metrics.gorse_healthy.clone(),
        );
        registry.register(
            "gorse_unauthorized",
            "1 when Gorse is ready but answers 401/403 to the API key (GORSE_API_KEY mismatch)",
            metrics.gorse_unauthorized.clone(),
        );
        registry.register(
            "feedback_abandoned",
            "Messages given up after FEEDBACK_MAX_DELIVER attempts with Gorse and Redis both failing (still in the stream)",
            metrics.abandoned.clone(),
        );
        metrics
    }

    /// An event was consumed.
    pub fn event(&self, kind: &'static str, outcome: &'static str) {
        self.events
            .get_or_create(&EventLabels { kind, outcome })
            .inc();
    }

    /// A batch was settled.
    pub fn batch(&self, outcome: BatchOutcome, messages: usize, ops: usize) {
        self.batches
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            })
            .inc();
        self.batch_size.observe(messages as f64);
        if outcome == BatchOutcome::Delivered {
            self.items_sent.inc_by(ops as u64);
            self.last_sync
                .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
        }
    }

    /// A message came again.
    pub fn redelivered(&self) {
        self.redeliveries.inc();
    }

    /// An entry was dead-lettered.
    pub fn dead_lettered(&self, kind: &'static str) {
        self.dead_letter_entries
            .get_or_create(&KindLabels { kind })
            .inc();
    }

    /// A dead-letter entry of `ops` operations reached Gorse.
    pub fn dead_letter_flushed(&self, ops: usize) {
        self.dead_letter_flushed.inc_by(ops as u64);
        self.last_sync
            .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
    }

    /// An entry was parked.
    pub fn parked(&self) {
        self.parked.inc();
    }

    /// A message was given up.
    pub fn abandoned(&self) {
        self.abandoned.inc();
    }
}
