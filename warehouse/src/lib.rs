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
//! [`Warehouse`] is its [`Template`]: `common::service::run_with::<Warehouse>` migrates the database with
//! [`Migrator`], then serves the API, the outbox relay and the worker until `shutdown`.

pub mod config;
pub mod entity;
pub mod http;
pub mod migration;
pub mod shipping;
pub mod worker;

use std::sync::Arc;

use common::service::{Assembly, NoCommand, Service, Template};
use sea_orm_migration::MigrationTrait;
use tokio_util::sync::CancellationToken;

pub use crate::config::WarehouseArgs;
use crate::{http::AppState, worker::WarehouseHandler};

/// Name of the service: its consumer group, its database, the `producer` of its events.
pub const SERVICE: &str = Warehouse::NAME;

/// The warehouse service, as the shared start-up (`common::service`) runs it.
pub struct Warehouse;

/// Migrations of this service's database: the runtime's tables (inbox, outbox) first.
pub type Migrator = common::service::Migrator<Warehouse>;

impl Template for Warehouse {
    const NAME: &'static str = "warehouse";
    const DEFAULT_PORT: u16 = 8005;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const ABOUT: &'static str = "Shipments of the mesh.";
    type Args = WarehouseArgs;
    type Command = NoCommand;

    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        migration::migrations()
    }

    async fn assemble(
        service: &Service,
        warehouse: WarehouseArgs,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Assembly> {
        let settings = Arc::new(warehouse);
        tracing::info!(
            auto_dispatch = settings.auto_dispatch,
            carrier = settings.carrier,
            "warehouse settings"
        );
        let state = AppState {
            db: service.db.clone(),
            notifier: service.relay.notifier(),
            verifier: service.verifier().await?,
            settings: settings.clone(),
        };
        let handler = worker::routes().with_state(WarehouseHandler {
            db: service.db.clone(),
            notifier: service.relay.notifier(),
            settings,
        });
        // Every effect of this service's handlers goes through `common::db::begin`: a whole batch
        // can commit as one transaction.
        let worker = service.batch_worker(&handler.streams(), handler);
        Ok(
            Assembly::new(http::router(state)).worker(
                service,
                "warehouse worker",
                worker,
                shutdown,
            ),
        )
    }
}
