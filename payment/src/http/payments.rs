//! `GET /payments?order_id=&user_id=`: payments, newest first. A user sees only their own:
//! asking for someone else's order gives an empty list (not a 403, so order ids cannot be probed)
//! and the `user_id` filter is for admins (403 for anyone else's id). Admins see every payment.

use axum::{
    Json, Router,
    extract::{Query, State, rejection::QueryRejection},
    routing::get,
};
use common::{
    auth::{AuthUser, Role},
    problem::ApiError,
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Deserialize;
use uuid::Uuid;

use super::AppState;
use crate::entity::payment;

/// Most payments one answer lists.
pub const MAX_PAYMENTS: u64 = 100;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/payments", get(list))
}

/// Filters of `GET /payments`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PaymentQuery {
    /// Only the payment of this order.
    pub order_id: Option<String>,
    /// Only this user's payments (admins; a user may name only themselves).
    pub user_id: Option<String>,
}

fn parse_id(name: &str, raw: Option<&str>) -> Result<Option<Uuid>, ApiError> {
    raw.map(|raw| {
        Uuid::parse_str(raw).map_err(|_| ApiError::validation(format!("`{name}` is not a UUID")))
    })
    .transpose()
}

/// Payments (the caller's own; admins: all), at most 100, newest first. Asking for the order of
/// someone else gives an empty list, as for an unknown order.
#[utoipa::path(get, path = "/payments", tag = "payments", params(PaymentQuery),
    security(("bearer" = [])),
    responses((status = 200, body = [payment::Model]), (status = 401, description = "no valid access token"),
              (status = 403, description = "`user_id` of someone else without the admin role"),
              (status = 422, description = "an id is not a UUID")))]
pub(crate) async fn list(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    query: Result<Query<PaymentQuery>, QueryRejection>,
) -> Result<Json<Vec<payment::Model>>, ApiError> {
    let Query(q) =
        query.map_err(|e| ApiError::validation(format!("bad query string: {}", e.body_text())))?;
    let order_id = parse_id("order_id", q.order_id.as_deref())?;
    let user_id = parse_id("user_id", q.user_id.as_deref())?;
    let user_id = match claims.role {
        Role::Admin => user_id,
        Role::User => match user_id {
            Some(id) if id != claims.sub => {
                return Err(ApiError::Forbidden(
                    "only admins may list other users' payments".into(),
                ));
            }
            _ => Some(claims.sub),
        },
    };
    let mut select = payment::Entity::find();
    if let Some(order_id) = order_id {
        select = select.filter(payment::Column::OrderId.eq(order_id));
    }
    if let Some(user_id) = user_id {
        select = select.filter(payment::Column::UserId.eq(user_id));
    }
    let payments = select
        .order_by_desc(payment::Column::Id)
        .limit(MAX_PAYMENTS)
        .all(&state.db)
        .await?;
    Ok(Json(payments))
}
