//! `/orders`: place an order (priced from the catalog projection, `order-placed` through the
//! outbox in the same transaction, `Idempotency-Key` for safe client retries), list orders (own;
//! admins all, with filters) and show one with its history.

use std::collections::BTreeMap;

use axum::{
    Json, Router,
    extract::{State, rejection::JsonRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use common::{
    auth::{AuthUser, Role},
    http::{
        correlation_id,
        extract::{Id, Query},
        pagination::{Page, PageQuery, Paged},
    },
    problem::ApiError,
};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, SqlErr};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{AppState, OrderView, visible_order};
use crate::{
    entity::order,
    orders::{self, NewOrder, PlaceError},
    status::OrderStatus,
};

/// Most units of one product in an order, and most lines: the mesh's bounds, which every
/// consumer of `order-placed` checks too.
pub use common::limits::{MAX_LINE_QUANTITY as MAX_QUANTITY, MAX_ORDER_LINES as MAX_LINES};
/// Longest `Idempotency-Key`, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;
/// The header a client retries with.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/orders", get(list).post(create))
        .route("/orders/{id}", get(show))
}

/// `POST /orders`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    /// 1 to 50 lines; lines of the same product are merged (their total at most 1000).
    pub items: Vec<ItemRequest>,
}

/// One product and how many.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemRequest {
    pub product_id: Uuid,
    /// 1 to 1000.
    pub quantity: i64,
}

impl PlaceOrder {
    /// The lines merged by product; 422 on anything out of bounds.
    fn validate(self) -> Result<BTreeMap<Uuid, i64>, ApiError> {
        if self.items.is_empty() || self.items.len() > MAX_LINES {
            return Err(ApiError::validation(format!(
                "`items` must have 1 to {MAX_LINES} lines"
            )));
        }
        let mut merged = BTreeMap::new();
        for item in self.items {
            if !(1..=MAX_QUANTITY).contains(&item.quantity) {
                return Err(ApiError::validation(format!(
                    "`quantity` must be between 1 and {MAX_QUANTITY} (product {})",
                    item.product_id
                )));
            }
            let total: &mut i64 = merged.entry(item.product_id).or_default();
            *total += item.quantity;
            if *total > MAX_QUANTITY {
                return Err(ApiError::validation(format!(
                    "at most {MAX_QUANTITY} units of product {} per order",
                    item.product_id
                )));
            }
        }
        Ok(merged)
    }
}

/// The request's identity for `Idempotency-Key`: a hash of the merged lines, so a retry that
/// lists the same lines in another order or split differently is the same request.
fn request_hash(items: &BTreeMap<Uuid, i64>) -> String {
    let mut hasher = Sha256::new();
    for (product_id, quantity) in items {
        hasher.update(format!("{product_id}:{quantity};"));
    }
    format!("{:x}", hasher.finalize())
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(raw) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = raw.to_str().map(str::trim).unwrap_or_default();
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY_LEN
        || !key.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(ApiError::validation(format!(
            "`Idempotency-Key` must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"
        )));
    }
    Ok(Some(key.to_owned()))
}

async fn find_by_key<C: ConnectionTrait>(
    conn: &C,
    user_id: Uuid,
    key: &str,
) -> Result<Option<order::Model>, ApiError> {
    Ok(order::Entity::find()
        .filter(order::Column::UserId.eq(user_id))
        .filter(order::Column::IdempotencyKey.eq(key))
        .one(conn)
        .await?)
}

/// The answer to a retry: the first order (200), or 422 if the key came with another request.
async fn replay(
    state: &AppState,
    existing: order::Model,
    hash: &str,
) -> Result<Response, ApiError> {
    if existing.request_hash.as_deref() != Some(hash) {
        return Err(ApiError::validation(
            "this `Idempotency-Key` was used with a different request",
        ));
    }
    let view = OrderView::load(&state.db, existing).await?;
    let mut response = (StatusCode::OK, Json(view)).into_response();
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(response)
}

/// Places an order for the caller: priced from the catalog, fee added, status `pending`.
#[utoipa::path(post, path = "/orders", tag = "orders", request_body = PlaceOrder,
    params(("Idempotency-Key" = Option<String>, Header, description = "the same key and body return the same order")),
    security(("bearer" = [])),
    responses((status = 201, body = OrderView, description = "placed"),
              (status = 200, body = OrderView, description = "a retry with the same `Idempotency-Key`"),
              (status = 401, description = "no valid access token"),
              (status = 422, description = "invalid items, unknown or inactive product, or a reused key")))]
pub(crate) async fn create(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    headers: HeaderMap,
    body: Result<Json<PlaceOrder>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let items = body.validate()?;
    let key = idempotency_key(&headers)?;
    let hash = request_hash(&items);
    if let Some(key) = &key
        && let Some(existing) = find_by_key(&state.db, user.sub, key).await?
    {
        return replay(&state, existing, &hash).await;
    }
    let new = NewOrder {
        user_id: user.sub,
        items,
        request_hash: key.as_ref().map(|_| hash.clone()),
        idempotency_key: key.clone(),
        correlation_id: correlation_id(&headers),
    };
    let priced = match orders::price(&state.db, new, state.fee_percent).await {
        Ok(priced) => priced,
        Err(PlaceError::UnknownProduct(id)) => {
            return Err(ApiError::validation(format!("unknown product {id}")));
        }
        Err(PlaceError::Inactive(id)) => {
            return Err(ApiError::validation(format!(
                "product {id} is no longer sold"
            )));
        }
        Err(PlaceError::Db(e)) => return Err(e.into()),
    };
    // Written with the orders placed at the same time, in one transaction (group commit).
    let (order, lines) = match state.placer.write(priced).await {
        Ok(placed) => placed,
        Err(e) => {
            // A concurrent retry with the same key won the race: answer as its retry.
            if let (Some(key), Some(SqlErr::UniqueConstraintViolation(_))) = (&key, e.sql_err())
                && let Some(existing) = find_by_key(&state.db, user.sub, key).await?
            {
                return replay(&state, existing, &hash).await;
            }
            return Err(e.into());
        }
    };
    state.notifier.notify();
    metrics::counter!("store_orders_placed_total").increment(1);
    tracing::info!(
        order.id = %order.id,
        user.id = %order.user_id,
        total_cents = order.total_cents,
        lines = lines.len(),
        "order placed"
    );
    let location = format!("/orders/{}", order.id);
    let view = OrderView::new(order, lines, None)?;
    let mut response = (StatusCode::CREATED, Json(view)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// `GET /orders` filters (the page is a `PageQuery`).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only orders in this status.
    pub status: Option<String>,
    /// Only this user's orders (admin; a user may only name themselves).
    pub user_id: Option<Uuid>,
}

/// The caller's orders, newest first; an admin sees everyone's.
#[utoipa::path(get, path = "/orders", tag = "orders", params(ListQuery, PageQuery), security(("bearer" = [])),
    responses((status = 200, body = Paged<OrderView>), (status = 401, description = "no valid access token"),
              (status = 400, description = "the query string does not parse: not a number, not a UUID, no such status"),
              (status = 403, description = "another user's orders, not being an admin"),
              (status = 422, description = "page or per_page out of range")))]
pub(crate) async fn list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Query(q): Query<ListQuery>,
    page: Page,
) -> Result<Json<Paged<OrderView>>, ApiError> {
    let status = q
        .status
        .as_deref()
        .map(|s| {
            OrderStatus::parse(s).ok_or_else(|| ApiError::bad_request(format!("no status `{s}`")))
        })
        .transpose()?;
    let user_filter = match (user.role, q.user_id) {
        (Role::Admin, filter) => filter,
        (_, Some(other)) if other != user.sub => {
            return Err(ApiError::Forbidden(
                "only admins may list other users' orders".into(),
            ));
        }
        _ => Some(user.sub),
    };
    let mut select = order::Entity::find();
    if let Some(user_id) = user_filter {
        select = select.filter(order::Column::UserId.eq(user_id));
    }
    if let Some(status) = status {
        select = select.filter(order::Column::Status.eq(status.as_str()));
    }
    let mut orders = page
        .fetch(select.order_by_desc(order::Column::Id), &state.db)
        .await?;
    let items = OrderView::load_many(&state.db, std::mem::take(&mut orders.items)).await?;
    Ok(Json(orders.with_items(items)))
}

/// One order with its full status history (the owner's or, for an admin, anyone's).
#[utoipa::path(get, path = "/orders/{id}", tag = "orders", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 400, description = "the id is not a UUID"),
              (status = 200, body = OrderView), (status = 401, description = "no valid access token"),
              (status = 404, description = "no such order, or not yours")))]
pub(crate) async fn show(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Id(id): Id,
) -> Result<Json<OrderView>, ApiError> {
    let order = visible_order(&state.db, &user, id).await?;
    Ok(Json(OrderView::load(&state.db, order).await?))
}
