//! The payment service: wallets, payments and refunds (docs/architecture.md, "Services").
//!
//! - [`http`]: the API — your own wallet (`/wallet`), deposits (`/wallet/deposit`, `/wallet/deposits`) and payments
//!   by order (`/payments`, owner or admin), plus `/openapi.json` and `/docs`.
//! - [`worker`]: the `payment` consumer group — opens wallets (`user-registered`), charges
//!   orders (`order-placed` → `order-completed` or `payment-failed`) and refunds them
//!   (`refund-order` → `payment-refunded`).
//! - [`ledger`]: the money rules both share (conditional single-statement balance changes).
//! - [`entity`] and [`migration`]: the tables; [`config`]: the service's own settings.
//!
//! [`run_with`] migrates the database with [`Migrator`], then serves the API, the outbox relay
//! and the worker until `shutdown`.

pub mod config;
pub mod entity;
pub mod http;
pub mod ledger;
pub mod migration;
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

pub use crate::config::PaymentArgs;
use crate::{http::AppState, worker::PaymentHandler};

/// Name of the service: its consumer group, its database, the `producer` of its events.
pub const SERVICE: &str = "payment";

/// Port of the HTTP API when `MESH_LISTEN` is not set.
pub const DEFAULT_PORT: u16 = 8004;

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

/// [`run_with`] the default payment settings.
pub async fn run(
    args: MeshArgs,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_with(args, PaymentArgs::default(), listener, shutdown).await
}

/// Connects and migrates, then serves on `listener` until `shutdown` is cancelled and everything
/// has drained. Tests call this with a listener on port 0.
pub async fn run_with(
    args: MeshArgs,
    payment: PaymentArgs,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let service = Service::connect::<Migrator>(SERVICE, args).await?;
    let verifier = service.verifier().await?;
    let state = AppState {
        db: service.db.clone(),
        verifier,
    };
    let handler = worker::routes().with_state(PaymentHandler {
        db: service.db.clone(),
        notifier: service.relay.notifier(),
        starting_credit_cents: payment.starting_credit_cents,
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
    let workers: Vec<Part> = vec![service.worker_part("payment worker", worker, &shutdown)];
    service
        .run(listener, router(state), workers, shutdown)
        .await
}
