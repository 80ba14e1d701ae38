//! Connections and plumbing every service needs, in one place:
//!
//! - [`http_server`]: serving HTTP with connection caps and header/idle timeouts.
//! - [`identity`]: the NATS identities (one NKey per service, plus an admin) and what each may
//!   publish and subscribe to.
//! - [`provision`]: the admin step that creates the `EVENTS` stream and the KV buckets.
//! - [`media_store`]: media objects (uploaded audio, waveforms) behind one trait; the NATS
//!   JetStream Object Store backend.
//! - [`nats`]: connect with reconnects (a service started before NATS waits for it), the
//!   `EVENTS` stream and KV buckets created or updated idempotently, and event publishing with
//!   `Nats-Msg-Id` deduplication and trace context.
//! - [`redis`]: a lazily connecting, self-reconnecting Redis handle and its readiness probe.
//! - [`retry`]: retry a start-up step with backoff until it works or shutdown begins.
//! - [`service`]: the settings every service shares (ports, timeouts, connections).
//! - [`sessions`]: the Redis keys of sessions and revocations.
//! - [`users`]: the accounts in the NATS KV bucket `users` (written by the edge, read by all).
//! - [`status`]: Gorse health as published by the feedback service, followed from KV.
//! - [`shutdown`]: SIGTERM/SIGINT as a `CancellationToken`, and the bounded drain.

pub mod http_server;
pub mod identity;
pub mod media_store;
pub mod nats;
pub mod provision;
pub mod redis;
pub mod retry;
pub mod service;
pub mod sessions;
pub mod shutdown;
pub mod status;
pub mod users;
