//! Test harness (feature `testing`). No mocks: everything here starts or talks to the real thing.
//!
//! - `redis_server`: a real `redis-server` per test on a free port, stopped, killed and restarted;
//! - `redis_cluster`: a real Redis Cluster (3 masters, 3 replicas) per test, with failovers;
//!   [`TestRedis`]: either, for tests that run on both;
//! - `database`: a fresh database per test (a SQLite file, or a new PostgreSQL database when
//!   `TEST_DATABASE_URL` is set);
//! - `app`: [`TestApp`], any service's `run` in process with its own Redis, database, data dir and
//!   key prefix, and tokens signed with its dev key; `http` and `events` are its HTTP helpers and
//!   its stream and outbox helpers;
//! - `lists`: [`TestApp`]'s asserts of the URL rules: paginated lists and `{id}` routes;
//! - `streams`: waiting for groups and readers, counting consumers, counting and decoding
//!   stream entries;
//! - `metrics`: a scraped `/metrics` page, parsed;
//! - `postgres`: a private PostgreSQL cluster a test stops and starts again (a database outage);
//! - `process`: service binaries as real processes;
//! - `otlp`: a real OTLP/HTTP trace receiver, decoding what services export;
//! - `wait`: polling until a condition holds;
//! - `macros`: `on_one_server_and_a_cluster!`, one test body run on a server and on a cluster.

mod app;
mod database;
mod events;
mod http;
mod lists;
mod macros;
mod metrics;
mod otlp;
mod postgres;
mod process;
mod redis_cluster;
mod redis_server;
mod streams;
mod wait;

pub use app::{Caller, InProcess, ServiceHome, TestApp};
pub use database::TestDb;
pub use events::{wait_idle, wait_outbox_empty};
pub use http::assert_problem;
pub use metrics::Exposition;
pub use otlp::{OtlpReceiver, ReceivedSpan};
pub use postgres::PostgresCluster;
pub use process::{Proc, service_command, workspace_bin};
pub use redis_cluster::{ClusterNode, RedisCluster, TestRedis};
pub use redis_server::{RedisServer, free_port, unique_prefix};
pub use streams::{
    GroupState, consumer_count, dead_letter_total, group_state, read_events, wait_blocked_readers,
    wait_drained, xlen,
};
pub use wait::{wait_ready, wait_until};
