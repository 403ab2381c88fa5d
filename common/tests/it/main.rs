//! Integration tests of the stream runtime, against a real `redis-server` (and SQLite, or
//! PostgreSQL when `TEST_DATABASE_URL` is set). One binary, one module per promise.

mod support;

mod basics;
mod batch;
mod claims;
mod concurrency;
mod crash;
mod deferred;
mod group;
mod housekeeping;
mod http_server;
mod idempotency;
mod lock_conflict;
mod metrics;
mod outbox;
mod poison;
mod replay;
mod restart;
mod retry;
mod routes;
mod scale;
mod shutdown;
mod traces;
mod trim;
mod write;
