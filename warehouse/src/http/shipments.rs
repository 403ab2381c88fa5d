//! `/shipments` (admin only): list them (filter by status or order, paginated, newest first), show
//! one, ship a pending one (`→ order-shipped`) or fail it (`→ refund-order`, reason
//! `fulfillment_failed`). Ship and fail are each one conditional update from `pending`; a
//! shipment in any other state is a 409 and nothing changes.

use anyhow::Context as _;
use axum::{
    Json, Router,
    extract::{State, rejection::JsonRejection},
    http::HeaderMap,
    routing::{get, post},
};
use common::{
    Envelope,
    auth::AdminUser,
    db::outbox,
    events::{RefundOrder, RefundReason},
    http::{
        correlation_id,
        extract::{Id, Query},
        pagination::{Page, PageQuery, Paged},
    },
    problem::ApiError,
};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::AppState;
use crate::{
    SERVICE,
    entity::shipment::{self, STATUSES},
    shipping::{self, Dispatch},
};

/// Longest reason of a failure, in characters.
pub const MAX_REASON_CHARS: usize = 200;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/shipments", get(list))
        .route("/shipments/{id}", get(show))
        .route("/shipments/{id}/ship", post(ship))
        .route("/shipments/{id}/fail", post(fail))
}

/// `GET /shipments` filters (the page is a `PageQuery`).
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ShipmentQuery {
    /// Only shipments in this status: `pending`, `shipped`, `failed` or `cancelled`.
    pub status: Option<String>,
    /// Only the shipment of this order.
    pub order_id: Option<Uuid>,
}

/// One page of shipments, newest first.
pub type ShipmentPage = Paged<shipment::Model>;

/// `POST /shipments/{id}/fail`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailShipment {
    /// Why the shipment cannot be fulfilled (`damaged in storage`, `address unreachable`…).
    pub reason: String,
}

impl FailShipment {
    fn validate(self) -> Result<String, ApiError> {
        let reason = self.reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
            return Err(ApiError::validation(format!(
                "`reason` must be 1 to {MAX_REASON_CHARS} characters"
            )));
        }
        Ok(reason.to_owned())
    }
}

/// Shipments, newest first (admin).
#[utoipa::path(get, path = "/shipments", tag = "shipments",
    params(ShipmentQuery, PageQuery), security(("bearer" = [])),
    responses((status = 200, body = Paged<shipment::Model>), (status = 401, description = "no valid access token"),
              (status = 400, description = "the query string does not parse: not a number, not a UUID, no such status"),
              (status = 403, description = "not an admin"),
              (status = 422, description = "page or per_page out of range")))]
pub(crate) async fn list(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    Query(q): Query<ShipmentQuery>,
    page: Page,
) -> Result<Json<ShipmentPage>, ApiError> {
    let mut select = shipment::Entity::find();
    if let Some(status) = &q.status {
        if !STATUSES.contains(&status.as_str()) {
            return Err(ApiError::bad_request(format!(
                "`status` must be one of {}",
                STATUSES.join(", ")
            )));
        }
        select = select.filter(shipment::Column::Status.eq(status.as_str()));
    }
    if let Some(order_id) = q.order_id {
        select = select.filter(shipment::Column::OrderId.eq(order_id));
    }
    let shipments = page
        .fetch(select.order_by_desc(shipment::Column::Id), &state.db)
        .await?;
    Ok(Json(shipments))
}

/// One shipment (admin).
#[utoipa::path(get, path = "/shipments/{id}", tag = "shipments",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 400, description = "the id is not a UUID"),
              (status = 200, body = shipment::Model), (status = 401, description = "no valid access token"),
              (status = 403, description = "not an admin"), (status = 404, description = "no such shipment")))]
pub(crate) async fn show(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    Id(id): Id,
) -> Result<Json<shipment::Model>, ApiError> {
    Ok(Json(find(&state.db, id).await?))
}

/// Ships a pending shipment with the configured carrier and a new tracking number; publishes
/// `order-shipped` (admin).
#[utoipa::path(post, path = "/shipments/{id}/ship", tag = "shipments",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 400, description = "the id is not a UUID"),
              (status = 200, body = shipment::Model), (status = 401, description = "no valid access token"),
              (status = 403, description = "not an admin"), (status = 404, description = "no such shipment"),
              (status = 409, description = "the shipment is not pending")))]
pub(crate) async fn ship(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    headers: HeaderMap,
    Id(id): Id,
) -> Result<Json<shipment::Model>, ApiError> {
    let txn = common::db::begin(&state.db).await?;
    let dispatch = Dispatch::with_carrier(&state.settings.carrier);
    let Some(shipped) = shipping::ship(&txn, id, &dispatch).await? else {
        txn.rollback().await?;
        return Err(not_pending(&state.db, id, "shipped").await);
    };
    let event = Envelope::of_event(
        SERVICE,
        &correlation_id(&headers),
        "",
        &shipping::order_shipped(&shipped),
    )
    .context("encode order-shipped")?;
    outbox::enqueue_event(&txn, &event).await?;
    txn.commit().await?;
    state.notifier.notify();
    metrics::counter!("warehouse_shipments_shipped_total").increment(1);
    tracing::info!(shipment.id = %id, order.id = %shipped.order_id, user.id = %admin.sub, "shipment shipped");
    Ok(Json(shipped))
}

/// Gives up on a pending shipment; publishes `refund-order` with reason `fulfillment_failed`, so
/// the order's money and stock go back (admin).
#[utoipa::path(post, path = "/shipments/{id}/fail", tag = "shipments", request_body = FailShipment,
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 400, description = "the id is not a UUID"),
              (status = 200, body = shipment::Model), (status = 401, description = "no valid access token"),
              (status = 403, description = "not an admin"), (status = 404, description = "no such shipment"),
              (status = 409, description = "the shipment is not pending"),
              (status = 422, description = "invalid reason")))]
pub(crate) async fn fail(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    headers: HeaderMap,
    Id(id): Id,
    body: Result<Json<FailShipment>, JsonRejection>,
) -> Result<Json<shipment::Model>, ApiError> {
    let Json(body) = body?;
    let reason = body.validate()?;
    let txn = common::db::begin(&state.db).await?;
    let Some(failed) = shipping::fail(&txn, id, &reason).await? else {
        txn.rollback().await?;
        return Err(not_pending(&state.db, id, "failed").await);
    };
    let payload = RefundOrder {
        order_id: failed.order_id,
        user_id: failed.user_id,
        reason: RefundReason::FulfillmentFailed,
    };
    let event = Envelope::of_event(SERVICE, &correlation_id(&headers), "", &payload)
        .context("encode refund-order")?;
    outbox::enqueue_event(&txn, &event).await?;
    txn.commit().await?;
    state.notifier.notify();
    metrics::counter!("warehouse_shipments_failed_total").increment(1);
    tracing::info!(shipment.id = %id, order.id = %failed.order_id, user.id = %admin.sub, reason, "shipment failed");
    Ok(Json(failed))
}

async fn find(db: &DatabaseConnection, id: Uuid) -> Result<shipment::Model, ApiError> {
    shipment::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no shipment {id}")))
}

/// Why a conditional update from `pending` matched nothing: no such shipment (404), or it is in
/// another state (409).
async fn not_pending(db: &DatabaseConnection, id: Uuid, wanted: &str) -> ApiError {
    match find(db, id).await {
        Ok(current) => ApiError::Conflict(format!(
            "shipment {id} is {}; only a pending shipment can be {wanted}",
            current.status
        )),
        Err(e) => e,
    }
}
