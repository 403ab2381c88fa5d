//! Infrastructure shared by the five services of the mesh — never a service's business rules.
//!
//! - [`config`], [`telemetry`], [`shutdown`]: process plumbing.
//! - [`auth`]: EdDSA access tokens, the auth extractors, dev key pairs.
//! - [`envelope`] and [`events`]: what travels on the streams.
//! - [`runtime`]: the stream runtime (worker, dead-letter, safe trim).
//! - [`publisher`]: adding envelopes to streams (the outbox relay's and tools' Redis side).
//! - [`db`]: database connection, inbox and outbox, and the outbox relay.
//! - [`backoff`]: backoff and log limiting while something is down.
//! - [`http`]: health, readiness, metrics, request ids, graceful serving.
//! - [`monitoring`]: the gauges operators alert on, refreshed in the background;
//!   [`recorder`]: the process-wide Prometheus recorder.
//! - [`service`]: the start-up every service binary shares.
//! - `testing` (feature `testing`): real `redis-server` and database harness for tests;
//!   `stream_testing` (same feature): publishing, in-process workers and stream reads for tests.

pub mod acl;
pub mod auth;
pub mod backoff;
pub mod config;
pub mod connection;
pub mod db;
pub mod envelope;
pub mod events;
pub mod http;
pub mod keys;
pub mod limits;
pub mod monitoring;
pub mod problem;
pub mod publisher;
pub mod recorder;
pub mod runtime;
pub mod service;
pub mod shutdown;
#[cfg(feature = "testing")]
pub mod stream_testing;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use envelope::Envelope;

/// Every binary of the mesh allocates with mimalloc: a worker allocates and frees a few small
/// buffers per stream entry, and in the consumer's profile glibc's allocator took a large share of
/// its time (`docs/benchmarks.md`, "Stream runtime"). It is compiled to commit its arenas' memory
/// on demand (`.cargo/config.toml`), not eagerly, which kept ~15 MB of every process resident.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
pub use keys::Keys;
