//! The store service: orders, their status history and the catalog projection (docs/architecture.md,
//! "Services").
//!
//! - [`http`]: the API — place an order (`POST /orders`, priced from the projection, with
//!   `Idempotency-Key`), list and show orders with their history, cancel an order.
//! - [`worker`]: the `store` consumer group — keeps the catalog projection (`product-changed`)
//!   and moves orders through the saga (`order-completed`, `payment-failed`, `stock-reserved`,
//!   `order-shipped`, `refund-order`, `payment-refunded`).
//! - [`status`]: the status machine; [`orders`]: pricing, transitions and history both share.
//! - [`entity`] and [`migration`]: the tables; [`config`]: the store's own settings.
//!
//! [`run`] migrates the database with [`Migrator`], then serves the API, the outbox relay and
//! the worker until `shutdown`.

pub mod config;
pub mod entity;
pub mod http;
pub mod migration;
pub mod orders;
pub mod status;
pub mod worker;

use axum::Router;
use common::{
    config::MeshArgs,
    runtime::{Worker, WorkerConfig},
    service::{Part, Service},
};
use sea_orm_migration::{MigrationTrait, MigratorTrait};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::config::StoreArgs;
use crate::{http::AppState, worker::StoreHandler};

/// Name of the service: its consumer group, its database, the `producer` of its events.
pub const SERVICE: &str = "store";

/// Port of the HTTP API when `MESH_LISTEN` is not set.
pub const DEFAULT_PORT: u16 = 8003;

/// Migrations of this service's database: the runtime's tables (inbox, outbox) first.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = common::db::migration::runtime_migrations();
        all.extend(migration::migrations());
        all
    }
}

/// The service's own HTTP API; [`Service::run`] adds the ops routes and request ids.
pub fn router(state: AppState) -> Router {
    common::service::index_router(SERVICE, env!("CARGO_PKG_VERSION")).merge(http::router(state))
}

/// [`run_with`] the default store settings.
pub async fn run(
    args: MeshArgs,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_with(args, StoreArgs::default(), listener, shutdown).await
}

/// Connects and migrates, then serves on `listener` until `shutdown` is cancelled and everything
/// has drained. Tests call this with a listener on port 0.
pub async fn run_with(
    args: MeshArgs,
    store: StoreArgs,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let service = Service::connect::<Migrator>(SERVICE, args).await?;
    let verifier = service.verifier().await?;
    let state = AppState {
        db: service.db.clone(),
        notifier: service.relay.notifier(),
        verifier,
        fee_percent: store.fee_percent,
    };
    let handler = worker::routes().with_state(StoreHandler {
        db: service.db.clone(),
    });
    // Every effect of this service's handlers goes through `common::db::begin`: a whole batch
    // can commit as one transaction.
    let config = WorkerConfig::new(service.keys.clone(), worker::GROUP, &handler.streams())
        .with_args(&service.args.worker)
        .with_batch_transactions(
            &service.args.worker,
            service.db.clone(),
            service.relay.notifier(),
        );
    let worker = Worker::new(service.redis_client.clone(), config, handler);
    let workers: Vec<Part> = vec![service.worker_part("store worker", worker, &shutdown)];
    service
        .run(listener, router(state), workers, shutdown)
        .await
}
