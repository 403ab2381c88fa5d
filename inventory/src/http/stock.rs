//! `/products/{id}/stock` and `/products/{id}/movements` (admin): adjust the stock by a signed
//! delta with a reason, and read the movement ledger. An adjustment is one conditional update —
//! a removal larger than the stock is a 409 and changes nothing.

use axum::{
    Json, Router,
    extract::{State, rejection::JsonRejection},
    routing::{get, post},
};
use common::{
    auth::AdminUser,
    http::{
        extract::Id,
        pagination::{Page, PageQuery},
    },
    problem::ApiError,
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{AppState, products::MAX_STOCK};
use crate::{
    entity::{product, stock_movement},
    stock::{self, AdjustError},
};

/// Longest reason of an adjustment, in characters.
pub const MAX_REASON_CHARS: usize = 200;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/products/{id}/stock", post(adjust))
        .route("/products/{id}/movements", get(movements))
}

/// `POST /products/{id}/stock`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustStock {
    /// Units to add (positive) or remove (negative); never 0.
    pub delta: i64,
    /// Why, for the ledger (`restock`, `damaged`, `inventory count`…).
    pub reason: String,
}

/// One page of a product's ledger, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct MovementPage {
    pub product_id: Uuid,
    pub stock: i64,
    pub items: Vec<stock_movement::Model>,
    pub page: u64,
    pub per_page: u64,
    pub total: u64,
}

impl AdjustStock {
    fn validate(self) -> Result<(i64, String), ApiError> {
        if self.delta == 0 || self.delta.abs() > MAX_STOCK {
            return Err(ApiError::validation(format!(
                "`delta` must be non-zero and at most {MAX_STOCK} either way"
            )));
        }
        let reason = self.reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
            return Err(ApiError::validation(format!(
                "`reason` must be 1 to {MAX_REASON_CHARS} characters"
            )));
        }
        Ok((self.delta, reason.to_owned()))
    }
}

/// Adds or removes stock with a reason for the ledger (admin); the product afterwards.
#[utoipa::path(post, path = "/products/{id}/stock", tag = "stock", request_body = AdjustStock,
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 400, description = "the id is not a UUID"), (status = 200, body = product::Model), (status = 401, description = "no valid access token"),
              (status = 403, description = "not an admin"), (status = 404, description = "no such product"),
              (status = 409, description = "the stock would go negative"),
              (status = 422, description = "invalid adjustment")))]
pub(crate) async fn adjust(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Id(id): Id,
    body: Result<Json<AdjustStock>, JsonRejection>,
) -> Result<Json<product::Model>, ApiError> {
    let Json(body) = body?;
    let (delta, reason) = body.validate()?;
    let txn = common::db::begin(&state.db).await?;
    let model = stock::adjust(&txn, id, delta, &reason)
        .await
        .map_err(|e| match e {
            AdjustError::NotFound(id) => ApiError::NotFound(format!("no product {id}")),
            e @ AdjustError::WouldGoNegative { .. } => ApiError::Conflict(e.to_string()),
            AdjustError::Db(e) => e.into(),
        })?;
    state.commit(txn).await?;
    tracing::info!(product.id = %id, user.id = %admin.sub, delta, stock = model.stock, "stock adjusted");
    Ok(Json(model))
}

/// The product's stock movements, newest first (admin).
#[utoipa::path(get, path = "/products/{id}/movements", tag = "stock",
    params(("id" = Uuid, Path), PageQuery), security(("bearer" = [])),
    responses((status = 200, body = MovementPage), (status = 401, description = "no valid access token"),
              (status = 403, description = "not an admin"), (status = 404, description = "no such product"),
              (status = 400, description = "query string does not parse"),
              (status = 422, description = "page or per_page out of range")))]
pub(crate) async fn movements(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    Id(id): Id,
    page: Page,
) -> Result<Json<MovementPage>, ApiError> {
    let Some(product) = product::Entity::find_by_id(id).one(&state.db).await? else {
        return Err(ApiError::NotFound(format!("no product {id}")));
    };
    let select = stock_movement::Entity::find()
        .filter(stock_movement::Column::ProductId.eq(id))
        .order_by_desc(stock_movement::Column::Id);
    let movements = page.fetch(select, &state.db).await?;
    Ok(Json(MovementPage {
        product_id: id,
        stock: product.stock,
        items: movements.items,
        page: movements.page,
        per_page: movements.per_page,
        total: movements.total,
    }))
}
