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
//! - [`service`]: the start-up every service binary shares; [`memory`]: the allocator and the
//!   tokio runtime of every binary.
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
pub mod memory;
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

pub use keys::Keys;
