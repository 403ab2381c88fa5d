//! The store's HTTP API: [`orders`] (place, list, show) and [`cancel`], plus [`openapi`]
//! (`/openapi.json`, Swagger UI at `/docs`). Errors are `ApiError` problem+json throughout; a
//! rejected request changes nothing because every write happens in one transaction that commits
//! last, with its events in the outbox.

mod cancel;
mod openapi;
mod orders;
mod views;

use axum::{Router, extract::FromRef};
use common::{
    auth::{Claims, JwtVerifier, Role},
    db::{GroupCommit, outbox::OutboxNotifier},
    problem::ApiError,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait};
use uuid::Uuid;

use crate::{entity::order, orders::PlaceOrders};

pub use views::{HistoryEntry, LineView, OrderPage, OrderView};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub notifier: OutboxNotifier,
    /// Writes `POST /orders`' orders, those placed at the same time together.
    pub placer: GroupCommit<PlaceOrders>,
    pub verifier: JwtVerifier,
    /// `STORE_FEE_PERCENT`.
    pub fee_percent: u32,
}

impl FromRef<AppState> for JwtVerifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

/// The API of the store.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(orders::router())
        .merge(cancel::router())
        .with_state(state)
        .merge(openapi::router())
}

/// The order if `user` may see it: their own, or any for an admin. Someone else's order is a
/// 404, not a 403, so order ids cannot be probed.
async fn visible_order<C: ConnectionTrait>(
    conn: &C,
    user: &Claims,
    id: Uuid,
) -> Result<order::Model, ApiError> {
    match order::Entity::find_by_id(id).one(conn).await? {
        Some(o) if o.user_id == user.sub || user.role == Role::Admin => Ok(o),
        _ => Err(ApiError::NotFound(format!("no order {id}"))),
    }
}
