//! The service template: what the five service binaries share, so each service's `lib.rs` holds
//! only its own wiring and its `main.rs` is one call.
//!
//! - `template`: the [`Template`] a service implements (name, port, migrations, its own
//!   settings, and [`Template::assemble`], which returns its API and its worker parts), and
//!   [`run_with`] / [`run`], which tests call on a listener of their own.
//! - `cli`: [`main`], the body of every `main.rs` (`serve`, `migrate`, and a service's own admin
//!   [`Task`]s, declared in `task` with [`NoCommand`] and [`NoArgs`] for a service without).
//! - `connect`: the [`Service`] — its database (migrated), Redis, publisher, relay, revocations
//!   and monitor — and the workers made from it.
//! - `parts`: [`Service::run`], which runs the API, the outbox relay, the housekeeping and the
//!   workers side by side; if one fails the others stop and the error says which one.
//! - `migrate`: connecting a database and migrating it (one replica at a time on PostgreSQL).

mod cli;
mod connect;
mod migrate;
mod parts;
mod task;
mod template;

pub use cli::{Command, main};
pub use connect::Service;
pub use migrate::connect_and_migrate;
pub use parts::{Part, run_parts};
pub use task::{NoArgs, NoCommand, Task};
pub use template::{Assembly, Migrator, Template, index_router, run, run_with};
