//! The stream runtime — the heart of the mesh. `worker` reads and dispatches, `process` handles a
//! batch, `acker` acknowledges, `maintenance` reclaims and refreshes, `dead_letter` and `trim`
//! are the operator-facing parts, `publisher` writes.

mod acker;
pub mod backoff;
pub mod batch;
pub mod dead_letter;
pub mod handler;
pub mod idempotency;
pub mod inspect;
mod maintenance;
mod process;
pub mod publisher;
pub mod redis_io;
pub mod stats;
pub mod trim;
pub mod worker;

pub use batch::BatchTransactions;
pub use handler::{HandleError, Handler, Message};
pub use publisher::Publisher;
pub use stats::WorkerStats;
pub use worker::{Worker, WorkerConfig, consumer_name};
