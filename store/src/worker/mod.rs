//! The store's consumer group (`store`): one handler per event type. [`product_changed`] keeps
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
        Event as _, OrderCompleted, OrderShipped, PaymentFailed, PaymentRefunded, ProductChanged,
        RefundOrder, StockReserved,
    },
    runtime::{HandleError, Handler, Message},
};
use sea_orm::DatabaseConnection;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::{
    orders::{self, Transition},
    status::OrderStatus,
};

/// The consumer group of the store on every stream it reads.
pub const GROUP: &str = crate::SERVICE;

/// The streams the store consumes.
pub const STREAMS: [&str; 7] = [
    ProductChanged::TYPE,
    OrderCompleted::TYPE,
    PaymentFailed::TYPE,
    StockReserved::TYPE,
    OrderShipped::TYPE,
    RefundOrder::TYPE,
    PaymentRefunded::TYPE,
];

/// Dispatches each entry to the handler of its stream.
#[derive(Clone)]
pub struct StoreHandler {
    pub db: DatabaseConnection,
}

impl Handler for StoreHandler {
    async fn handle(&self, message: &Message) -> Result<(), HandleError> {
        let span = tracing::info_span!(
            "message",
            stream = %message.stream,
            event.id = %message.envelope.event_id,
            group = GROUP,
        );
        let envelope = &message.envelope;
        async move {
            match &*message.stream {
                ProductChanged::TYPE => product_changed::handle(self, envelope).await,
                OrderCompleted::TYPE => order_completed::handle(self, envelope).await,
                PaymentFailed::TYPE => payment_failed::handle(self, envelope).await,
                StockReserved::TYPE => stock_reserved::handle(self, envelope).await,
                OrderShipped::TYPE => order_shipped::handle(self, envelope).await,
                RefundOrder::TYPE => refund_order::handle(self, envelope).await,
                PaymentRefunded::TYPE => payment_refunded::handle(self, envelope).await,
                other => Err(HandleError::dead_letter(anyhow!(
                    "store does not consume `{other}`"
                ))),
            }
        }
        .instrument(span)
        .await
    }
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
