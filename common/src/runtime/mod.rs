//! The stream runtime — the heart of the mesh. A [`Worker`] (`worker.rs`, configured by
//! `config.rs`) starts its parts on one `shared.rs` state (which also keeps track of the entries
//! this consumer owns, `entry.rs`) and stops them. Each part has its own module, and the arrows
//! between them point one way (`scripts/import-graph.sh`):
//!
//! - `reader`: sends `XREADGROUP`s and hands each batch to processing; `groups` creates (and
//!   recreates) the consumer group it reads as.
//! - `process`: a batch's way through: its `intake` (early idempotency check, envelope
//!   validation), the handler (concurrently, or in the transactional batches of `batch`), and
//!   each outcome's disposal.
//! - `retry`: a failed entry: redelivered after a backoff counted by Redis, or dead-lettered.
//! - `claims`: keeping our claims fresh, taking over the entries of dead consumers.
//! - `acker`: acknowledgements, batched; `maintenance`: the timers.
//!
//! `meters`: the worker's Prometheus metrics (handles made once per worker).
//!
//! What a service plugs in: a [`Handler`] (`handler`), normally its [`Routes`] (`routes`): one
//! `async fn` per event type, the payload decoded and checked, the streams derived.
//!
//! Shared with tools and tests: `dead_letter` (the dead-letter stream and its replay), `trim`
//! (safe trimming), `inspect`, `redis_io`, `idempotency`, `stats`, and [`Publisher`] (defined in
//! `crate::publisher`).

mod acker;
pub mod batch;
mod claims;
mod config;
pub mod dead_letter;
mod entry;
mod event_span;
mod groups;
pub mod handler;
pub mod idempotency;
pub mod inbox_pruning;
pub mod inspect;
mod intake;
mod maintenance;
pub mod meters;
mod process;
mod reader;
pub mod redis_io;
mod retry;
pub mod routes;
mod shared;
pub mod stats;
pub mod trim;
pub mod worker;

/// `runtime::backoff` and `runtime::Publisher`, where they were before they moved below both the
/// runtime and the outbox relay.
pub use crate::{
    backoff,
    publisher::{self, Publisher},
};
pub use batch::BatchTransactions;
pub use handler::{HandleError, Handler, Message};
pub use routes::{Routed, Routes};
pub use stats::WorkerStats;
pub use worker::{Worker, WorkerConfig, consumer_name};
