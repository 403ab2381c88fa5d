//! The warehouse's HTTP API: [`shipments`] (admin only: list, show, ship, fail) and [`openapi`]
//! (`/openapi.json`, Swagger UI at `/docs`). Errors are `ApiError` problem+json throughout; a
//! rejected request changes nothing because every write is one conditional update in a
//! transaction that commits last, together with its event in the outbox.

mod openapi;
mod shipments;

use std::sync::Arc;

use axum::{Router, extract::FromRef};
use common::{auth::JwtVerifier, db::outbox::OutboxNotifier};
use sea_orm::DatabaseConnection;

use crate::config::WarehouseArgs;

pub use shipments::{FailShipment, ShipmentPage, ShipmentQuery};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub notifier: OutboxNotifier,
    pub verifier: JwtVerifier,
    pub settings: Arc<WarehouseArgs>,
}

impl FromRef<AppState> for JwtVerifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

/// The API of the warehouse.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(shipments::router())
        .with_state(state)
        .merge(openapi::router())
}
