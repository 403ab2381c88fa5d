//! The warehouse's consumer group (`warehouse`): one handler per event type —
//! [`stock_reserved`] creates the shipment of a reserved order (and ships it at once when
//! auto-dispatch is on), [`refund_order`] withdraws the order from the warehouse. Both apply their
//! effect, the inbox record and any follow-up event in one transaction.

mod refund_order;
mod stock_reserved;

use std::sync::Arc;

use common::{
    db::outbox::OutboxNotifier,
    events::{Event as _, RefundOrder, StockReserved},
    runtime::{HandleError, Handler, Message},
};
use sea_orm::DatabaseConnection;
use tracing::Instrument as _;

use crate::config::WarehouseArgs;

/// The consumer group of the warehouse on every stream it reads.
pub const GROUP: &str = crate::SERVICE;

/// The streams the warehouse consumes.
pub const STREAMS: [&str; 2] = [StockReserved::TYPE, RefundOrder::TYPE];

/// Dispatches each entry to the handler of its stream.
#[derive(Clone)]
pub struct WarehouseHandler {
    pub db: DatabaseConnection,
    pub notifier: OutboxNotifier,
    pub settings: Arc<WarehouseArgs>,
}

impl Handler for WarehouseHandler {
    async fn handle(&self, message: &Message) -> Result<(), HandleError> {
        let span = tracing::info_span!(
            "message",
            stream = %message.stream,
            event.id = %message.envelope.event_id,
            group = GROUP,
        );
        async move {
            match &*message.stream {
                StockReserved::TYPE => stock_reserved::handle(self, &message.envelope).await,
                RefundOrder::TYPE => refund_order::handle(self, &message.envelope).await,
                other => Err(HandleError::dead_letter(anyhow::anyhow!(
                    "warehouse does not consume `{other}`"
                ))),
            }
        }
        .instrument(span)
        .await
    }
}
