//! The warehouse service: shipments (docs/architecture.md, "Services").
//!
//! - [`http`]: the admin API — list shipments, ship or fail a pending one — plus `/openapi.json`
//!   and Swagger UI at `/docs`.
//! - [`worker`]: the `warehouse` consumer group — creates (and, with auto-dispatch, ships) the
//!   shipment of every reserved order (`stock-reserved`), and withdraws refunded orders
//!   (`refund-order`).
//! - [`shipping`]: the status rules both share; [`config`]: the warehouse's own settings.
//! - [`entity`] and [`migration`]: the tables.
//!
//! [`run`] migrates the database with [`Migrator`], then serves the API, the outbox relay and the
//! worker until `shutdown`.

pub mod config;
pub mod entity;
pub mod http;
pub mod migration;
pub mod shipping;
pub mod worker;

use std::sync::Arc;

use axum::Router;
use common::{
    config::MeshArgs,
    runtime::{Worker, WorkerConfig},
    service::{Part, Service},
};
use sea_orm_migration::{MigrationTrait, MigratorTrait};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::WarehouseArgs;

use crate::{http::AppState, worker::WarehouseHandler};

/// Name of the service: its consumer group, its database, the `producer` of its events.
pub const SERVICE: &str = "warehouse";

/// Port of the HTTP API when `MESH_LISTEN` is not set.
pub const DEFAULT_PORT: u16 = 8005;

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

/// [`run_with`] the default warehouse settings (auto-dispatch on).
pub async fn run(
    args: MeshArgs,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_with(args, WarehouseArgs::default(), listener, shutdown).await
}

/// Connects and migrates, then serves on `listener` until `shutdown` is cancelled and everything
/// has drained. Tests call this with a listener on port 0.
pub async fn run_with(
    args: MeshArgs,
    warehouse: WarehouseArgs,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let service = Service::connect::<Migrator>(SERVICE, args).await?;
    let verifier = service.verifier().await?;
    let settings = Arc::new(warehouse);
    tracing::info!(
        auto_dispatch = settings.auto_dispatch,
        carrier = settings.carrier,
        "warehouse settings"
    );
    let state = AppState {
        db: service.db.clone(),
        notifier: service.relay.notifier(),
        verifier,
        settings: settings.clone(),
    };
    let handler = worker::routes().with_state(WarehouseHandler {
        db: service.db.clone(),
        notifier: service.relay.notifier(),
        settings,
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
    let workers: Vec<Part> = vec![service.worker_part("warehouse worker", worker, &shutdown)];
    service
        .run(listener, router(state), workers, shutdown)
        .await
}
