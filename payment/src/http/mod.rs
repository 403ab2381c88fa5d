//! The payment service's HTTP API, one module per resource: [`wallet`] (your own wallet and
//! deposits) and [`payments`] (payments by order: the owner or an admin), plus [`openapi`]
//! (`/openapi.json`, Swagger UI at `/docs`). Errors are `ApiError` problem+json throughout; a
//! rejected request changes nothing because every write happens in one transaction that commits
//! last.

mod openapi;
mod payments;
mod wallet;

use axum::{Router, extract::FromRef};
use common::auth::JwtVerifier;
use sea_orm::DatabaseConnection;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub verifier: JwtVerifier,
}

impl FromRef<AppState> for JwtVerifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

/// The API of the payment service.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(wallet::router())
        .merge(payments::router())
        .with_state(state)
        .merge(openapi::router())
}
