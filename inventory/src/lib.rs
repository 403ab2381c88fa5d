//! The inventory service: products, stock and reservations (docs/architecture.md, "Services").
//!
//! - [`http`]: the API — the catalog (`/products`, public reads cached in Redis, admin writes)
//!   and admin stock adjustments with their ledger.
//! - [`worker`]: the `inventory` consumer group — reserves the stock of paid orders
//!   (`order-completed`) and releases it when a reserved order is refunded (`refund-order`).
//! - [`stock`] and [`catalog`]: the rules both share; [`cache`]: the product list cache.
//! - [`entity`] and [`migration`]: the tables.
//!
//! [`Inventory`] is its [`Template`]: `common::service::run_with::<Inventory>` migrates the
//! database with [`Migrator`], then serves the API, the outbox relay and the worker until
//! `shutdown`.

pub mod cache;
pub mod catalog;
pub mod entity;
pub mod http;
pub mod migration;
pub mod stock;
pub mod worker;

use common::service::{Assembly, NoArgs, NoCommand, Service, Template};
use sea_orm_migration::MigrationTrait;
use tokio_util::sync::CancellationToken;

use crate::{cache::ProductCache, http::AppState, worker::InventoryHandler};

/// Name of the service: its consumer group, its database, the `producer` of its events.
pub const SERVICE: &str = Inventory::NAME;

/// The inventory service, as the shared start-up (`common::service`) runs it.
pub struct Inventory;

/// Migrations of this service's database: the runtime's tables (inbox, outbox) first.
pub type Migrator = common::service::Migrator<Inventory>;

impl Template for Inventory {
    const NAME: &'static str = "inventory";
    const DEFAULT_PORT: u16 = 8002;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const ABOUT: &'static str = "Products, stock and reservations of the mesh.";
    type Args = NoArgs;
    type Command = NoCommand;

    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        migration::migrations()
    }

    async fn assemble(
        service: &Service,
        _: NoArgs,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Assembly> {
        let cache = ProductCache::new(service.redis.clone(), &service.keys);
        let state = AppState {
            db: service.db.clone(),
            notifier: service.relay.notifier(),
            cache: cache.clone(),
            verifier: service.verifier().await?,
        };
        let handler = worker::routes().with_state(InventoryHandler {
            db: service.db.clone(),
            notifier: service.relay.notifier(),
            cache,
        });
        // Every effect of the handlers goes through `common::db::begin`, and the cache is
        // invalidated with `common::db::after_commit`: a whole batch can commit as one transaction.
        let worker = service.batch_worker(&handler.streams(), handler);
        Ok(
            Assembly::new(http::router(state)).worker(
                service,
                "inventory worker",
                worker,
                shutdown,
            ),
        )
    }
}
