//! The pipeline from the stream to Gorse: a durable pull consumer shared by every feedback
//! instance, decoding and mapping each event, batching, and settling each batch — delivered to
//! Gorse, or stored in the dead-letter list — before acknowledging its messages.
//!
//! - Back-pressure: the loop pulls only while the batch has room and stops pulling while it
//!   settles a batch; JetStream's `max_ack_pending` bounds what is in flight.
//! - Order: while dead letters are waiting, new batches queue behind them in the list (so an
//!   unlike is never applied before the like it undoes), unless Redis cannot be reached.
//! - Nothing is acknowledged before it is in Gorse or in Redis. If both are down, messages are
//!   negatively acknowledged with a growing delay and come back.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::message::Message;
use futures::StreamExt as _;
use sidechain_events::decode_event;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::batch::{Batch, Taken};
use crate::dead_letter::{DeadLetter, DeadLetters};
use crate::delivery::Delivery;
use crate::mapping::{self, GorseOp};
use crate::metrics::{BatchOutcome, FeedbackMetrics};

/// Longest delay asked of JetStream before a message comes back.
const MAX_NAK_DELAY: Duration = Duration::from_secs(60);

/// What the pipeline needs.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Sends to Gorse.
    pub delivery: Delivery,
    /// The dead-letter list.
    pub dead_letters: DeadLetters,
    /// Metrics.
    pub metrics: FeedbackMetrics,
    /// Events per batch.
    pub batch_size: usize,
    /// Age at which a batch is sent anyway.
    pub batch_timeout: Duration,
    /// The consumer's ack wait (progress is reported well within it).
    pub ack_wait: Duration,
    /// Deliveries before an event is given up.
    pub max_deliver: i64,
}

impl Pipeline {
    /// Consumes until shutdown; then settles the batch in hand and returns.
    pub async fn run(self, consumer: PullConsumer, shutdown: CancellationToken) {
        let mut batch: Batch<Message> = Batch::new(self.batch_size, self.batch_timeout);
        while !shutdown.is_cancelled() {
            let messages = consumer
                .stream()
                .max_messages_per_batch(self.batch_size)
                .heartbeat(Duration::from_secs(5))
                .expires(Duration::from_secs(30))
                .messages()
                .await;
            let mut messages = match messages {
                Ok(messages) => messages,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot pull from the feedback consumer; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        () = shutdown.cancelled() => break,
                    }
                }
            };
            loop {
                let due = batch.due();
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break,
                    () = sleep_until(due), if due.is_some() => self.settle(&mut batch).await,
                    next = messages.next(), if !batch.is_full() => match next {
                        Some(Ok(message)) => self.accept(message, &mut batch).await,
                        Some(Err(err)) => tracing::debug!(error = %err, "pull stream hiccup"),
                        None => break,
                    },
                }
                if batch.is_full() {
                    self.settle(&mut batch).await;
                }
            }
        }
        if !batch.is_empty() {
            tracing::info!(
                messages = batch.len(),
                "settling the last batch before exit"
            );
            self.settle(&mut batch).await;
        }
    }

    /// Decodes, maps and batches one message (or settles it at once when it needs nothing).
    async fn accept(&self, message: Message, batch: &mut Batch<Message>) {
        let (delivered, sequence) = message
            .info()
            .map(|info| (info.delivered, info.stream_sequence))
            .unwrap_or((1, 0));
        if delivered > 1 {
            self.metrics.redelivered();
        }
        let span = sidechain_telemetry::message_span!(
            "feedback receive",
            kind = "consumer",
            operation = "receive",
            message,
            messaging.message.id = tracing::field::Empty,
        );
        let event = match decode_event(&message.payload) {
            Ok(event) => event,
            Err(err) => {
                self.dead_letter_poison(message, &err.to_string(), delivered, sequence)
                    .instrument(span)
                    .await;
                return;
            }
        };
        span.record("messaging.message.id", tracing::field::display(event.id()));
        let ops = mapping::operations(&event);
        if ops.is_empty() {
            self.metrics.event(event.kind().as_str(), "ignored");
            ack(&message, AckKind::Ack).instrument(span).await;
        } else {
            self.metrics.event(event.kind().as_str(), "batched");
            batch.add(ops, message);
            self.metrics.batch_pending.set(batch.len() as i64);
        }
    }

    async fn dead_letter_poison(
        &self,
        message: Message,
        reason: &str,
        delivered: i64,
        sequence: u64,
    ) {
        tracing::error!(
            error = reason,
            stream_sequence = sequence,
            "undecodable event; dead-lettering it"
        );
        self.metrics.event("unknown", "poison");
        let entry = DeadLetter::poison(reason, &message.subject, sequence, &message.payload);
        match self.dead_letters.push(&entry).await {
            Ok(()) => ack(&message, AckKind::Ack).await,
            Err(err) => {
                tracing::warn!(error = %err, "cannot dead-letter a poison message (Redis); it will come back");
                self.retry_later(&message, delivered, sequence).await;
            }
        }
    }

    /// Delivers or dead-letters the batch, then acknowledges (or defers) its messages.
    async fn settle(&self, batch: &mut Batch<Message>) {
        let Taken { ops, acks } = batch.take();
        self.metrics.batch_pending.set(0);
        if acks.is_empty() {
            return;
        }
        let span = tracing::info_span!(
            "feedback batch",
            otel.name = "process feedback batch",
            otel.kind = "consumer",
            messaging.system = "nats",
            messaging.operation.type = "process",
            messaging.batch.message_count = acks.len(),
            gorse.operations = ops.len(),
            trace_id = tracing::field::Empty,
        );
        // The batch continues the trace of its first event and links the others.
        let mut contexts = acks
            .iter()
            .map(|m| sidechain_telemetry::propagation::extract_nats(m.headers.as_ref()));
        if let Some(first) = contexts.next() {
            sidechain_telemetry::propagation::continue_trace(&span, first);
        }
        for context in contexts.take(127) {
            use opentelemetry::trace::TraceContextExt as _;
            span.add_link(context.span().span_context().clone());
        }
        let op_count = ops.len();
        let outcome = with_progress(&acks, self.ack_wait, self.deliver_or_dead_letter(ops))
            .instrument(span)
            .await;
        self.metrics.batch(outcome, acks.len(), op_count);
        match outcome {
            BatchOutcome::Delivered | BatchOutcome::DeadLettered => {
                futures::future::join_all(acks.iter().map(|m| ack(m, AckKind::Ack))).await;
            }
            BatchOutcome::NotStored => {
                for message in &acks {
                    let (delivered, sequence) = message
                        .info()
                        .map(|info| (info.delivered, info.stream_sequence))
                        .unwrap_or((1, 0));
                    self.retry_later(message, delivered, sequence).await;
                }
            }
        }
    }

    async fn deliver_or_dead_letter(&self, ops: Vec<GorseOp>) -> BatchOutcome {
        let mut redis_reachable = true;
        if self.dead_letters.has_backlog()
            && let Err(err) = self.dead_letters.flush(&self.delivery).await
        {
            tracing::warn!(error = %err, "cannot reach the dead-letter list; delivering directly");
            redis_reachable = false;
        }
        if redis_reachable && self.dead_letters.has_backlog() {
            return self
                .dead_letter(ops, "queued behind earlier dead-letter entries")
                .await;
        }
        match self.delivery.deliver(&ops).await {
            Ok(None) => BatchOutcome::Delivered,
            Ok(Some(refused)) => {
                // Everything else landed; the refused operations alone are parked.
                match self
                    .dead_letters
                    .park_refused(&DeadLetter::batch(refused.ops, &refused.reason))
                    .await
                {
                    Ok(()) => BatchOutcome::Delivered,
                    Err(err) => {
                        tracing::error!(error = %err, "cannot park refused operations (Redis); the batch will be redelivered");
                        BatchOutcome::NotStored
                    }
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, operations = ops.len(), "Gorse did not take a batch; dead-lettering it");
                self.dead_letter(ops, &err.to_string()).await
            }
        }
    }

    async fn dead_letter(&self, ops: Vec<GorseOp>, reason: &str) -> BatchOutcome {
        match self
            .dead_letters
            .push(&DeadLetter::batch(ops, reason))
            .await
        {
            Ok(()) => BatchOutcome::DeadLettered,
            Err(err) => {
                tracing::error!(error = %err, "Gorse and the dead-letter list are both unavailable; events will be redelivered");
                BatchOutcome::NotStored
            }
        }
    }

    /// Asks JetStream to deliver the message again later, or gives it up at the last attempt.
    async fn retry_later(&self, message: &Message, delivered: i64, sequence: u64) {
        if delivered >= self.max_deliver {
            tracing::error!(
                stream_sequence = sequence,
                delivered,
                "giving up an event after FEEDBACK_MAX_DELIVER attempts; it stays in the stream"
            );
            self.metrics.abandoned();
            ack(message, AckKind::Term).await;
        } else {
            ack(message, AckKind::Nak(Some(nak_delay(delivered)))).await;
        }
    }
}

/// 1 s, 2 s, 4 s … capped at a minute.
fn nak_delay(delivered: i64) -> Duration {
    let exponent = u32::try_from(delivered.clamp(1, 7) - 1).unwrap_or(0);
    Duration::from_secs(2u64.pow(exponent)).min(MAX_NAK_DELAY)
}

async fn ack(message: &Message, kind: AckKind) {
    if let Err(err) = message.ack_with(kind).await {
        // The message will be redelivered after ack_wait; processing is idempotent.
        tracing::warn!(error = %err, "acknowledgement not sent");
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => futures::future::pending().await,
    }
}

/// Runs `work`, telling JetStream the messages are still being worked on every third of the
/// ack wait, so a slow Gorse does not cause redeliveries mid-send.
async fn with_progress<F: Future>(messages: &[Message], ack_wait: Duration, work: F) -> F::Output {
    let mut ticker = tokio::time::interval(ack_wait / 3);
    ticker.tick().await;
    tokio::pin!(work);
    loop {
        tokio::select! {
            output = &mut work => return output,
            _ = ticker.tick() => {
                for message in messages {
                    ack(message, AckKind::Progress).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nak_delays_grow_and_are_capped() {
        assert_eq!(nak_delay(1), Duration::from_secs(1));
        assert_eq!(nak_delay(2), Duration::from_secs(2));
        assert_eq!(nak_delay(4), Duration::from_secs(8));
        assert_eq!(nak_delay(100), Duration::from_secs(60));
    }
}
