//! `POST /orders/{id}/cancel`. A `pending` order is cancelled at once and `refund-order`
//! (`cancelled_by_customer`) tells payment never to charge it — it keeps a tombstone. A `paid` or
//! `reserved` order needs its money back and its stock released first: the request is recorded
//! in the history and `refund-order` published; the warehouse rules on it (it is the one service
//! that knows whether the goods left, see `common::events::RefundReason`), and the final status
//! comes from the events: `refunded`, or `shipped` if the goods had already left. (The same holds
//! for a `pending` order that payment had in fact charged already.) Shipped or finished → 409.
//! The order's row is locked for the transaction, so the status cannot change under it.

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use common::{
    Envelope,
    auth::{AuthUser, Role},
    db::outbox,
    events::{RefundOrder, RefundReason},
    http::{correlation_id, extract::Id},
    problem::ApiError,
};

use super::{AppState, OrderView};
use crate::{
    SERVICE,
    orders::{self, Transition, parse_status},
    status::OrderStatus,
};

/// History reason of a cancelled pending order.
pub const CANCELLED: &str = "cancelled_by_customer";
/// History reason of a cancellation asked for on a paid order.
pub const CANCELLATION_REQUESTED: &str = "cancellation requested by customer";

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/orders/{id}/cancel", post(cancel))
}

/// Cancels the caller's order (an admin may cancel any).
#[utoipa::path(post, path = "/orders/{id}/cancel", tag = "orders", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 400, description = "the id is not a UUID"),
              (status = 200, body = OrderView, description = "a pending order, now cancelled"),
              (status = 202, body = OrderView, description = "a paid order: refund requested"),
              (status = 401, description = "no valid access token"),
              (status = 404, description = "no such order, or not yours"),
              (status = 409, description = "shipped or already finished")))]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    headers: HeaderMap,
    Id(id): Id,
) -> Result<(StatusCode, Json<OrderView>), ApiError> {
    let txn = common::db::begin(&state.db).await?;
    let order = match orders::lock(&txn, id).await? {
        Some(o) if o.user_id == user.sub || user.role == Role::Admin => o,
        _ => return Err(ApiError::NotFound(format!("no order {id}"))),
    };
    let status = parse_status(&order.status)?;
    let refund = || {
        let payload = RefundOrder {
            order_id: id,
            user_id: order.user_id,
            reason: RefundReason::CancelledByCustomer,
        };
        Envelope::of_event(SERVICE, &correlation_id(&headers), "", &payload)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("encode refund-order: {e}")))
    };
    let answer = match status {
        OrderStatus::Pending => {
            let moved =
                orders::transition(&txn, id, OrderStatus::Cancelled, CANCELLED, None).await?;
            if moved != Transition::Applied {
                return Err(ApiError::Internal(anyhow::anyhow!(
                    "locked pending order {id} did not cancel: {moved:?}"
                )));
            }
            outbox::enqueue_event(&txn, &refund()?).await?;
            StatusCode::OK
        }
        OrderStatus::Paid | OrderStatus::Reserved => {
            let asked = orders::history(&txn, id)
                .await?
                .iter()
                .any(|h| h.reason == CANCELLATION_REQUESTED);
            // Asking twice changes nothing: the refund is already on its way.
            if !asked {
                orders::note(&txn, id, CANCELLATION_REQUESTED, None).await?;
                outbox::enqueue_event(&txn, &refund()?).await?;
            }
            StatusCode::ACCEPTED
        }
        OrderStatus::Shipped => {
            return Err(ApiError::Conflict(format!(
                "order {id} has shipped and can no longer be cancelled"
            )));
        }
        terminal => {
            return Err(ApiError::Conflict(format!(
                "order {id} is already {terminal}"
            )));
        }
    };
    txn.commit().await?;
    state.notifier.notify();
    tracing::info!(order.id = %id, user.id = %user.sub, from = %status, "cancellation");
    let order = super::visible_order(&state.db, &user, id).await?;
    Ok((answer, Json(OrderView::load(&state.db, order).await?)))
}
