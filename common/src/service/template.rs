//! [`Template`]: what a service tells the shared start-up about itself, and [`run_with`], the
//! start-up: connect and migrate, [`Template::assemble`] the service's own API and workers, then
//! [`Service::run`] them with everything every service runs.

use std::{future::Future, marker::PhantomData};

use axum::{Json, Router, routing::get};
use sea_orm_migration::{MigrationTrait, MigratorTrait};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{
    connect::Service,
    parts::{Part, ok},
    task::Task,
};
use crate::{
    config::MeshArgs,
    runtime::{Handler, Worker},
};

/// One service of the mesh, as the shared start-up sees it. A service implements it on a unit
/// type (`pub struct Inventory;`); `main.rs` calls [`main::<Inventory>()`](super::main) and tests
/// call [`run_with::<Inventory>`](run_with).
pub trait Template: Send + Sync + 'static {
    /// Name of the service: its consumer group, its database, the `producer` of its events.
    const NAME: &'static str;
    /// Port of the HTTP API when `MESH_LISTEN` is not set.
    const DEFAULT_PORT: u16;
    /// The service crate's version (`env!("CARGO_PKG_VERSION")`), shown by `GET /` and `--version`.
    const VERSION: &'static str;
    /// One line for `--help`.
    const ABOUT: &'static str;

    /// The service's own settings on top of [`MeshArgs`] ([`NoArgs`](super::NoArgs) for none); their defaults are
    /// what [`run`] uses.
    type Args: clap::Args + Clone + Default + Send + 'static;
    /// Admin tasks besides `serve` and `migrate` ([`NoCommand`](super::NoCommand) for none).
    type Command: Task;

    /// The service's own migrations, in order; the runtime's (inbox, outbox) run before them.
    fn migrations() -> Vec<Box<dyn MigrationTrait>>;

    /// The service's own API (the ops routes, `GET /` and the request layers are added for it)
    /// and its long-running parts (its workers), on a connected and migrated `service`.
    fn assemble(
        service: &Service,
        args: Self::Args,
        shutdown: &CancellationToken,
    ) -> impl Future<Output = anyhow::Result<Assembly>> + Send;
}

/// What [`Template::assemble`] returns: the service's API and its parts.
pub struct Assembly {
    pub api: Router,
    pub parts: Vec<Part>,
}

impl Assembly {
    pub fn new(api: Router) -> Self {
        Self {
            api,
            parts: Vec::new(),
        }
    }

    /// Adds a worker, named `name` in logs and errors; see [`Service::worker_part`].
    pub fn worker<H: Handler>(
        mut self,
        service: &Service,
        name: &'static str,
        worker: Worker<H>,
        shutdown: &CancellationToken,
    ) -> Self {
        self.parts.push(service.worker_part(name, worker, shutdown));
        self
    }

    /// Adds a part that runs until `shutdown` (it must stop when the token is cancelled).
    pub fn part(
        mut self,
        name: &'static str,
        part: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        self.parts.push((name, Box::pin(ok(part))));
        self
    }
}

/// The migrator of service `T`: the runtime's migrations, then the service's own.
pub struct Migrator<T>(PhantomData<fn() -> T>);

impl<T: Template> MigratorTrait for Migrator<T> {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = crate::db::migration::runtime_migrations();
        all.extend(T::migrations());
        all
    }
}

/// [`run_with`] the service's default settings.
pub async fn run<T: Template>(
    args: MeshArgs,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_with::<T>(args, T::Args::default(), listener, shutdown).await
}

/// Connects and migrates, assembles the service, then serves on `listener` until `shutdown` is
/// cancelled and everything has drained. `main` calls it with the bound `MESH_LISTEN`; tests with
/// a listener on port 0 and settings of their choice.
pub async fn run_with<T: Template>(
    args: MeshArgs,
    own: T::Args,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let service = Service::connect::<Migrator<T>>(T::NAME, args).await?;
    let Assembly { api, parts } = T::assemble(&service, own, &shutdown).await?;
    let api = index_router(T::NAME, T::VERSION).merge(api);
    service.run(listener, api, parts, shutdown).await
}

/// `GET /`: which service answers, and its version.
pub fn index_router(name: &'static str, version: &'static str) -> Router {
    Router::new().route(
        "/",
        get(move || async move { Json(serde_json::json!({"service": name, "version": version})) }),
    )
}
