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
//! [`Payment`] is its [`Template`]: `common::service::run_with::<Payment>` migrates the database with
//! [`Migrator`], then serves the API, the outbox relay and the worker until `shutdown`.

pub mod config;
pub mod entity;
pub mod http;
pub mod ledger;
pub mod migration;
pub mod worker;

use common::service::{Assembly, NoCommand, Service, Template};
use sea_orm_migration::MigrationTrait;
use tokio_util::sync::CancellationToken;

pub use crate::config::PaymentArgs;
use crate::{http::AppState, worker::PaymentHandler};

/// Name of the service: its consumer group, its database, the `producer` of its events.
pub const SERVICE: &str = Payment::NAME;

/// The payment service, as the shared start-up (`common::service`) runs it.
pub struct Payment;

/// Migrations of this service's database: the runtime's tables (inbox, outbox) first.
pub type Migrator = common::service::Migrator<Payment>;

impl Template for Payment {
    const NAME: &'static str = "payment";
    const DEFAULT_PORT: u16 = 8004;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const ABOUT: &'static str = "Wallets, payments and refunds of the mesh.";
    type Args = PaymentArgs;
    type Command = NoCommand;

    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        migration::migrations()
    }

    async fn assemble(
        service: &Service,
        payment: PaymentArgs,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Assembly> {
        let state = AppState {
            db: service.db.clone(),
            verifier: service.verifier().await?,
        };
        let handler = worker::routes().with_state(PaymentHandler {
            db: service.db.clone(),
            notifier: service.relay.notifier(),
            starting_credit_cents: payment.starting_credit_cents,
        });
        // Every effect of this service's handlers goes through `common::db::begin`: a whole batch
        // can commit as one transaction.
        let worker = service.batch_worker(&handler.streams(), handler);
        Ok(Assembly::new(http::router(state)).worker(service, "payment worker", worker, shutdown))
    }
}
