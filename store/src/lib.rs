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
//! [`Store`] is its [`Template`]: `common::service::run_with::<Store>` migrates the database with
//! [`Migrator`], then serves the API, the outbox relay and the worker until `shutdown`.

pub mod config;
pub mod entity;
pub mod http;
pub mod migration;
pub mod orders;
pub mod status;
pub mod worker;

use common::{
    db::GroupCommit,
    service::{Assembly, NoCommand, Service, Template},
};
use sea_orm_migration::MigrationTrait;
use tokio_util::sync::CancellationToken;

pub use crate::config::StoreArgs;
use crate::{http::AppState, orders::PlaceOrders, worker::StoreHandler};

/// Name of the service: its consumer group, its database, the `producer` of its events.
pub const SERVICE: &str = Store::NAME;

/// The store service, as the shared start-up (`common::service`) runs it.
pub struct Store;

/// Migrations of this service's database: the runtime's tables (inbox, outbox) first.
pub type Migrator = common::service::Migrator<Store>;

impl Template for Store {
    const NAME: &'static str = "store";
    const DEFAULT_PORT: u16 = 8003;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const ABOUT: &'static str = "Orders and the catalog projection of the mesh.";
    type Args = StoreArgs;
    type Command = NoCommand;

    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        migration::migrations()
    }

    async fn assemble(
        service: &Service,
        store: StoreArgs,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Assembly> {
        let state = AppState {
            db: service.db.clone(),
            notifier: service.relay.notifier(),
            placer: GroupCommit::spawn(service.db.clone(), PlaceOrders, orders::MAX_GROUP_ROWS),
            verifier: service.verifier().await?,
            fee_percent: store.fee_percent,
        };
        let handler = worker::routes().with_state(StoreHandler {
            db: service.db.clone(),
        });
        // Every effect of this service's handlers goes through `common::db::begin`: a whole batch
        // can commit as one transaction.
        let worker = service.batch_worker(&handler.streams(), handler);
        Ok(Assembly::new(http::router(state)).worker(service, "store worker", worker, shutdown))
    }
}
