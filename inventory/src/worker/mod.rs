//! The inventory's consumer group (`inventory`): one handler per event type —
//! [`order_completed`] reserves the stock of a paid order, [`refund_order`] releases it when a
//! reserved order is refunded. Both apply their effect, the inbox record and the follow-up
//! events in one transaction.

mod order_completed;
mod refund_order;

use common::{
    db::outbox::OutboxNotifier,
    events::{Event as _, OrderCompleted, RefundOrder},
    runtime::{HandleError, Handler, Message},
};
use sea_orm::DatabaseConnection;
use tracing::Instrument as _;

use crate::cache::ProductCache;

/// The consumer group of the inventory on every stream it reads.
pub const GROUP: &str = crate::SERVICE;

/// The streams the inventory consumes.
pub const STREAMS: [&str; 2] = [OrderCompleted::TYPE, RefundOrder::TYPE];

/// Dispatches each entry to the handler of its stream.
#[derive(Clone)]
pub struct InventoryHandler {
    pub db: DatabaseConnection,
    pub notifier: OutboxNotifier,
    pub cache: ProductCache,
}

impl Handler for InventoryHandler {
    async fn handle(&self, message: &Message) -> Result<(), HandleError> {
        let span = tracing::info_span!(
            "message",
            stream = %message.stream,
            event.id = %message.envelope.event_id,
            group = GROUP,
        );
        async move {
            match &*message.stream {
                OrderCompleted::TYPE => order_completed::handle(self, &message.envelope).await,
                RefundOrder::TYPE => refund_order::handle(self, &message.envelope).await,
                other => Err(HandleError::dead_letter(anyhow::anyhow!(
                    "inventory does not consume `{other}`"
                ))),
            }
        }
        .instrument(span)
        .await
    }
}
