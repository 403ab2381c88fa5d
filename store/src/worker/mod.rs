//! The store's consumer group (`store`): one handler per event type, declared in [`routes`].
//! [`product_changed`] keeps
//! the catalog projection; the others move orders through the status machine
//! ([`crate::status`]) with [`advance`]: one conditional update, a history row and the inbox
//! record in one transaction. An event for an order the store does not know is dead-lettered:
//! the store commits an order before `order-placed` can leave, so it is not early, it is wrong.

mod order_completed;
mod order_shipped;
mod payment_failed;
mod payment_refunded;
mod product_changed;
mod refund_order;
mod stock_reserved;

use anyhow::anyhow;
use common::{
    Envelope,
    db::inbox,
    events::{
        OrderCompleted, OrderShipped, PaymentFailed, PaymentRefunded, ProductChanged, RefundOrder,
        StockReserved,
    },
    runtime::{HandleError, Routes},
};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::{
    orders::{self, Transition},
    status::OrderStatus,
};

/// The consumer group of the store on every stream it reads.
pub const GROUP: &str = crate::SERVICE;

/// The event handlers of the group; their streams are the ones the store reads.
pub fn routes() -> Routes<StoreHandler> {
    Routes::new(GROUP)
        .on::<ProductChanged>(product_changed::handle)
        .on::<OrderCompleted>(order_completed::handle)
        .on::<PaymentFailed>(payment_failed::handle)
        .on::<StockReserved>(stock_reserved::handle)
        .on::<OrderShipped>(order_shipped::handle)
        .on::<RefundOrder>(refund_order::handle)
        .on::<PaymentRefunded>(payment_refunded::handle)
}

/// What the store's event handlers share.
#[derive(Clone)]
pub struct StoreHandler {
    pub db: DatabaseConnection,
}

/// Moves `order_id` to `to` because of `envelope`, once: the inbox record, the conditional
/// status update and its history row commit together. A move the status machine refuses (late,
/// duplicate under another event id, after a terminal state) is recorded in the inbox and
/// otherwise ignored.
async fn advance(
    h: &StoreHandler,
    envelope: &Envelope,
    order_id: Uuid,
    to: OrderStatus,
    reason: &str,
) -> Result<(), HandleError> {
    let Some(txn) = inbox::begin_once(&h.db, GROUP, envelope).await? else {
        tracing::debug!(order.id = %order_id, "already handled");
        return Ok(());
    };
    let event_id = envelope.event_id.to_string();
    match orders::transition(&txn, order_id, to, reason, Some(&event_id)).await? {
        Transition::Applied => {
            txn.commit().await?;
            metrics::counter!("store_order_transitions_total", "to" => to.as_str()).increment(1);
            tracing::info!(order.id = %order_id, status = %to, reason, "order status changed");
        }
        Transition::Ignored(current) => {
            // Overtaken on the way (streams are not ordered relative to each other: the order can
            // be `reserved` before its `order-completed` arrives): the status stays, but the
            // history still records that the step happened, with its event.
            if !to.is_terminal() && !current.is_terminal() && to.rank() < current.rank() {
                let late = format!("{to}: {reason} (arrived after {current})");
                orders::note(&txn, order_id, &late, Some(&event_id)).await?;
            }
            txn.commit().await?;
            tracing::info!(
                order.id = %order_id,
                status = %current,
                ignored = %to,
                "status change not allowed from the current status; ignored"
            );
        }
        Transition::NoOrder => {
            return Err(HandleError::dead_letter(anyhow!(
                "no order {order_id} (event {} on {})",
                envelope.event_id,
                envelope.event_type
            )));
        }
    }
    Ok(())
}
