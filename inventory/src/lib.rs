//! The inventory service: products, stock and reservations (docs/architecture.md, "Services").
//!
//! - [`http`]: the API — the catalog (`/products`, public reads cached in Redis, admin writes)
//!   and admin stock adjustments with their ledger.
//! - [`worker`]: the `inventory` consumer group — reserves the stock of paid orders
//!   (`order-completed`) and releases it when a reserved order is refunded (`refund-order`).
//! - [`stock`] and [`catalog`]: the rules both share; [`cache`]: the product list cache.
//! - [`entity`] and [`migration`]: the tables.
//!
//! [`run`] migrates the database with [`Migrator`], then serves the API, the outbox relay and
//! the worker until `shutdown`.

pub mod cache;
pub mod catalog;
pub mod entity;
pub mod http;
pub mod migration;
pub mod stock;
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

use crate::{cache::ProductCache, http::AppState, worker::InventoryHandler};

/// Name of the service: its consumer group, its database, the `producer` of its events.
pub const SERVICE: &str = "inventory";

/// Port of the HTTP API when `MESH_LISTEN` is not set.
pub const DEFAULT_PORT: u16 = 8002;

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

/// Connects and migrates, then serves on `listener` until `shutdown` is cancelled and everything
/// has drained. Tests call this with a listener on port 0.
pub async fn run(
    args: MeshArgs,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let service = Service::connect::<Migrator>(SERVICE, args).await?;
    let verifier = service.verifier().await?;
    let cache = ProductCache::new(service.redis.clone(), &service.keys);
    let state = AppState {
        db: service.db.clone(),
        notifier: service.relay.notifier(),
        cache: cache.clone(),
        verifier,
    };
    let handler = worker::routes().with_state(InventoryHandler {
        db: service.db.clone(),
        notifier: service.relay.notifier(),
        cache,
    });
    // Every effect of the handlers goes through `common::db::begin`, and the cache is
    // invalidated with `common::db::after_commit`: a whole batch can commit as one transaction.
    let config = WorkerConfig::new(service.keys.clone(), worker::GROUP, &handler.streams())
        .with_args(&service.args.worker)
        .with_batch_transactions(
            &service.args.worker,
            service.db.clone(),
            service.relay.notifier(),
        );
    let worker = Worker::new(service.redis_client.clone(), config, handler);
    let workers: Vec<Part> = vec![service.worker_part("inventory worker", worker, &shutdown)];
    service
        .run(listener, router(state), workers, shutdown)
        .await
}
