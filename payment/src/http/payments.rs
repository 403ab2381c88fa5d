//! `GET /payments?order_id=&user_id=&page=&per_page=`: payments, newest first, a page at a time. A user sees only their own:
//! asking for someone else's order gives an empty list (not a 403, so order ids cannot be probed)
//! and the `user_id` filter is for admins (403 for anyone else's id). Admins see every payment.

use axum::{Json, Router, extract::State, routing::get};
use common::{
    auth::{AuthUser, Role},
    http::{
        extract::Query,
        pagination::{Page, PageQuery, Paged},
    },
    problem::ApiError,
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Deserialize;
use uuid::Uuid;

use super::AppState;
use crate::entity::payment;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/payments", get(list))
}

/// Filters of `GET /payments` (the page is a `PageQuery`).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PaymentQuery {
    /// Only the payment of this order.
    pub order_id: Option<Uuid>,
    /// Only this user's payments (admins; a user may name only themselves).
    pub user_id: Option<Uuid>,
}

/// Payments (the caller's own; admins: all), newest first. Asking for the order of someone else
/// gives an empty list, as for an unknown order.
#[utoipa::path(get, path = "/payments", tag = "payments", params(PaymentQuery, PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Paged<payment::Model>), (status = 401, description = "no valid access token"),
              (status = 400, description = "the query string does not parse: an id is not a UUID, a page is not a number"),
              (status = 403, description = "`user_id` of someone else without the admin role"),
              (status = 422, description = "page or per_page out of range")))]
pub(crate) async fn list(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Query(q): Query<PaymentQuery>,
    page: Page,
) -> Result<Json<Paged<payment::Model>>, ApiError> {
    let user_id = match claims.role {
        Role::Admin => q.user_id,
        Role::User => match q.user_id {
            Some(id) if id != claims.sub => {
                return Err(ApiError::Forbidden(
                    "only admins may list other users' payments".into(),
                ));
            }
            _ => Some(claims.sub),
        },
    };
    let mut select = payment::Entity::find();
    if let Some(order_id) = q.order_id {
        select = select.filter(payment::Column::OrderId.eq(order_id));
    }
    if let Some(user_id) = user_id {
        select = select.filter(payment::Column::UserId.eq(user_id));
    }
    let payments = page
        .fetch(select.order_by_desc(payment::Column::Id), &state.db)
        .await?;
    Ok(Json(payments))
}
