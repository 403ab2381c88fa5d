//! `/products`: the catalog. Reads are public, the list is served from the Redis cache
//! (`crate::cache`); writes need the admin role, change the product and enqueue
//! `product-changed` in one transaction, then invalidate the cache.

use axum::{
    Json, Router,
    extract::{State, rejection::JsonRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use common::{
    auth::AdminUser,
    http::{
        extract::Id,
        pagination::{Page, PageQuery, Paged},
    },
    problem::ApiError,
};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use serde::Deserialize;
use utoipa::ToSchema;

use super::AppState;
use crate::{
    catalog::{self, NewProduct, ProductPatch},
    entity::product,
};
use common::http::correlation_id;

/// Longest product name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
/// Highest price a product may have (a sanity bound against typos and overflow).
pub use common::limits::MAX_PRICE_CENTS;
/// Highest stock a single write may set or add.
pub const MAX_STOCK: i64 = 1_000_000_000;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/products", get(list).post(create))
        .route("/products/{id}", get(show).patch(update).delete(remove))
}

/// One page of the active catalog.
pub type ProductPage = Paged<product::Model>;

/// `POST /products`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProduct {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub price_cents: i64,
    /// Initial stock (default 0); later changes go through `POST /products/{id}/stock`.
    #[serde(default)]
    pub stock: i64,
}

/// `PATCH /products/{id}`: the catalog fields; stock is not one of them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProduct {
    pub name: Option<String>,
    pub description: Option<String>,
    pub price_cents: Option<i64>,
    pub active: Option<bool>,
}

fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::validation("`name` must not be empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::validation(format!(
            "`name` must be at most {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(name.to_owned())
}

fn check_description(description: String) -> Result<String, ApiError> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ApiError::validation(format!(
            "`description` must be at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    Ok(description)
}

fn check_price(price_cents: i64) -> Result<i64, ApiError> {
    if !(0..=MAX_PRICE_CENTS).contains(&price_cents) {
        return Err(ApiError::validation(format!(
            "`price_cents` must be between 0 and {MAX_PRICE_CENTS}"
        )));
    }
    Ok(price_cents)
}

impl CreateProduct {
    fn validate(self) -> Result<NewProduct, ApiError> {
        if !(0..=MAX_STOCK).contains(&self.stock) {
            return Err(ApiError::validation(format!(
                "`stock` must be between 0 and {MAX_STOCK}"
            )));
        }
        Ok(NewProduct {
            name: check_name(&self.name)?,
            description: check_description(self.description)?,
            price_cents: check_price(self.price_cents)?,
            stock: self.stock,
        })
    }
}

impl UpdateProduct {
    fn validate(self) -> Result<ProductPatch, ApiError> {
        if self.name.is_none()
            && self.description.is_none()
            && self.price_cents.is_none()
            && self.active.is_none()
        {
            return Err(ApiError::validation(
                "nothing to change: give `name`, `description`, `price_cents` or `active`",
            ));
        }
        Ok(ProductPatch {
            name: self.name.as_deref().map(check_name).transpose()?,
            description: self.description.map(check_description).transpose()?,
            price_cents: self.price_cents.map(check_price).transpose()?,
            active: self.active,
        })
    }
}

/// Active products, oldest first (public; served from the cache when it can be).
#[utoipa::path(get, path = "/products", tag = "products", params(PageQuery),
    responses((status = 200, body = Paged<product::Model>),
              (status = 400, description = "query string does not parse"),
              (status = 422, description = "page or per_page out of range")))]
pub(crate) async fn list(State(state): State<AppState>, page: Page) -> Result<Response, ApiError> {
    let version = match state.cache.get(page.page(), page.per_page()).await {
        Ok(body) => return Ok(json_text(body, "hit")),
        Err(version) => version,
    };
    let body = load_page(&state.db, page).await?;
    let body = serde_json::to_string(&body).map_err(anyhow::Error::from)?;
    if let Some(version) = version {
        state
            .cache
            .put(version, page.page(), page.per_page(), &body)
            .await;
    }
    Ok(json_text(body, "miss"))
}

async fn load_page(db: &DatabaseConnection, page: Page) -> Result<ProductPage, ApiError> {
    let select = product::Entity::find()
        .filter(product::Column::Active.eq(true))
        .order_by_asc(product::Column::Id);
    page.fetch(select, db).await
}

/// A JSON body already serialised; `x-cache` says whether it came from the cache.
fn json_text(body: String, cache: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::HeaderName::from_static("x-cache"), cache),
        ],
        body,
    )
        .into_response()
}

/// One product, inactive ones included (old orders still name them).
#[utoipa::path(get, path = "/products/{id}", tag = "products", params(("id" = Uuid, Path)),
    responses((status = 400, description = "the id is not a UUID"), (status = 200, body = product::Model), (status = 404, description = "no such product")))]
pub(crate) async fn show(
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<Json<product::Model>, ApiError> {
    product::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no product {id}")))
}

/// Creates a product (admin); publishes `product-changed`.
#[utoipa::path(post, path = "/products", tag = "products", request_body = CreateProduct,
    security(("bearer" = [])),
    responses((status = 201, body = product::Model), (status = 401, description = "no valid access token"),
              (status = 403, description = "not an admin"), (status = 422, description = "invalid product")))]
pub(crate) async fn create(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    headers: HeaderMap,
    body: Result<Json<CreateProduct>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let new = body.validate()?;
    let txn = common::db::begin(&state.db).await?;
    let model = catalog::create(&txn, new, &correlation_id(&headers)).await?;
    state.commit(txn).await?;
    tracing::info!(product.id = %model.id, user.id = %admin.sub, "product created");
    let location = format!("/products/{}", model.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(model),
    )
        .into_response())
}

/// Changes name, description, price or `active` (admin); publishes `product-changed`.
#[utoipa::path(patch, path = "/products/{id}", tag = "products", request_body = UpdateProduct,
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 400, description = "the id is not a UUID"), (status = 200, body = product::Model), (status = 401, description = "no valid access token"),
              (status = 403, description = "not an admin"), (status = 404, description = "no such product"),
              (status = 422, description = "invalid change")))]
pub(crate) async fn update(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Id(id): Id,
    headers: HeaderMap,
    body: Result<Json<UpdateProduct>, JsonRejection>,
) -> Result<Json<product::Model>, ApiError> {
    let Json(body) = body?;
    let patch = body.validate()?;
    let txn = common::db::begin(&state.db).await?;
    let Some(model) = catalog::update(&txn, id, patch, &correlation_id(&headers)).await? else {
        return Err(ApiError::NotFound(format!("no product {id}")));
    };
    state.commit(txn).await?;
    tracing::info!(product.id = %id, user.id = %admin.sub, revision = model.revision, "product updated");
    Ok(Json(model))
}

/// Soft delete (admin): the product becomes inactive; publishes `product-changed`.
#[utoipa::path(delete, path = "/products/{id}", tag = "products", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 400, description = "the id is not a UUID"), (status = 204, description = "inactive"), (status = 401, description = "no valid access token"),
              (status = 403, description = "not an admin"), (status = 404, description = "no such product")))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Id(id): Id,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let txn = common::db::begin(&state.db).await?;
    if catalog::deactivate(&txn, id, &correlation_id(&headers))
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound(format!("no product {id}")));
    }
    state.commit(txn).await?;
    tracing::info!(product.id = %id, user.id = %admin.sub, "product deactivated");
    Ok(StatusCode::NO_CONTENT)
}
