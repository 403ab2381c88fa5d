//! The inventory's HTTP API, one module per resource: [`products`] (the catalog: public reads
//! through the Redis cache, admin writes) and [`stock`] (admin stock adjustments and the movement
//! ledger), plus [`openapi`] (`/openapi.json`, Swagger UI at `/docs`). Errors are `ApiError` problem+json throughout; a rejected request changes nothing
//! because every write happens in one transaction that commits last.

mod openapi;
mod products;
mod stock;

use axum::{Router, extract::FromRef};
use common::{auth::JwtVerifier, db::outbox::OutboxNotifier, problem::ApiError};
use sea_orm::DatabaseConnection;

use crate::cache::ProductCache;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub notifier: OutboxNotifier,
    pub cache: ProductCache,
    pub verifier: JwtVerifier,
}

impl FromRef<AppState> for JwtVerifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

impl AppState {
    /// Commits a write, then wakes the outbox relay and invalidates the product cache, in that
    /// order: the event goes out at once and the next read sees the change.
    async fn commit(&self, txn: common::db::WriteTxn) -> Result<(), ApiError> {
        txn.commit().await?;
        self.notifier.notify();
        self.cache.invalidate().await;
        Ok(())
    }
}

/// The API of the inventory.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(products::router())
        .merge(stock::router())
        .with_state(state)
        .merge(openapi::router())
}
