//! The warehouse's consumer group (`warehouse`): one handler per event type, declared in
//! [`routes`] —
//! [`stock_reserved`] creates the shipment of a reserved order (and ships it at once when
//! auto-dispatch is on), [`refund_order`] withdraws the order from the warehouse. Both apply their
//! effect, the inbox record and any follow-up event in one transaction.

mod refund_order;
mod stock_reserved;

use std::sync::Arc;

use common::{
    db::outbox::OutboxNotifier,
    events::{RefundOrder, StockReserved},
    runtime::Routes,
};
use sea_orm::DatabaseConnection;

use crate::config::WarehouseArgs;

/// The consumer group of the warehouse on every stream it reads.
pub const GROUP: &str = crate::SERVICE;

/// The event handlers of the group; their streams are the ones the warehouse reads.
pub fn routes() -> Routes<WarehouseHandler> {
    Routes::new(GROUP)
        .on::<StockReserved>(stock_reserved::handle)
        .on::<RefundOrder>(refund_order::handle)
}

/// What the warehouse's event handlers share.
#[derive(Clone)]
pub struct WarehouseHandler {
    pub db: DatabaseConnection,
    pub notifier: OutboxNotifier,
    pub settings: Arc<WarehouseArgs>,
}
