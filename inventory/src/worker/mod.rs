//! The inventory's consumer group (`inventory`): one handler per event type, declared in
//! [`routes`] — [`order_completed`] reserves the stock of a paid order, [`refund_order`] releases
//! it when a reserved order is refunded. Both apply their effect, the inbox record and the
//! follow-up events in one transaction.

mod order_completed;
mod refund_order;

use common::{
    db::outbox::OutboxNotifier,
    events::{OrderCompleted, RefundOrder},
    runtime::Routes,
};
use sea_orm::DatabaseConnection;

use crate::cache::ProductCache;

/// The consumer group of the inventory on every stream it reads.
pub const GROUP: &str = crate::SERVICE;

/// The event handlers of the group; their streams are the ones the inventory reads.
pub fn routes() -> Routes<InventoryHandler> {
    Routes::new(GROUP)
        .on::<OrderCompleted>(order_completed::handle)
        .on::<RefundOrder>(refund_order::handle)
}

/// What the inventory's event handlers share.
#[derive(Clone)]
pub struct InventoryHandler {
    pub db: DatabaseConnection,
    pub notifier: OutboxNotifier,
    pub cache: ProductCache,
}
