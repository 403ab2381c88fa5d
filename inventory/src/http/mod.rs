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
use serde::Deserialize;
use uuid::Uuid;

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

/// A product id from the path; anything that is not a UUID names no product.
fn product_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound(format!("no product `{raw}`")))
}

/// `?page=&per_page=` of a list, 1-based.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1-based page number (default 1).
    pub page: Option<u64>,
    /// Items per page, 1 to 100 (default 20).
    pub per_page: Option<u64>,
}

/// Largest page a client may ask for.
pub const MAX_PER_PAGE: u64 = 100;
/// Page size when none is asked for.
pub const DEFAULT_PER_PAGE: u64 = 20;

impl PageQuery {
    /// Checked `(page, per_page)`. A query that does not parse (`page=abc`, `per_page=-1`) is a
    /// 400 `bad-request`, like a body that is not JSON and like the user service's lists; numbers
    /// out of range (`page=0`, `per_page=101`) are a 422 `validation`.
    fn resolve(
        query: Result<axum::extract::Query<PageQuery>, axum::extract::rejection::QueryRejection>,
    ) -> Result<(u64, u64), ApiError> {
        let axum::extract::Query(q) = query
            .map_err(|e| ApiError::bad_request(format!("bad query string: {}", e.body_text())))?;
        let page = q.page.unwrap_or(1);
        let per_page = q.per_page.unwrap_or(DEFAULT_PER_PAGE);
        if page == 0 {
            return Err(ApiError::validation("`page` starts at 1"));
        }
        if per_page == 0 || per_page > MAX_PER_PAGE {
            return Err(ApiError::validation(format!(
                "`per_page` must be between 1 and {MAX_PER_PAGE}"
            )));
        }
        Ok((page, per_page))
    }
}
