//! The payment service's consumer group (`payment`): one handler per event type —
//! [`user_registered`] opens the wallet, [`order_placed`] charges it, [`refund_order`] gives a
//! captured payment back (or tombstones an order not charged yet). Each applies its effect, the
//! inbox record and the follow-up event in one transaction.

mod order_placed;
mod refund_order;
mod user_registered;

use common::{
    db::outbox::OutboxNotifier,
    events::{Event as _, OrderPlaced, RefundOrder, UserRegistered},
    runtime::{HandleError, Handler, Message},
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr};
use tracing::Instrument as _;
use uuid::Uuid;

/// The consumer group of the payment service on every stream it reads.
pub const GROUP: &str = crate::SERVICE;

/// The streams the payment service consumes.
pub const STREAMS: [&str; 3] = [UserRegistered::TYPE, OrderPlaced::TYPE, RefundOrder::TYPE];

/// `reason` of a `payment-failed` when the wallet cannot cover the order.
pub const INSUFFICIENT_FUNDS: &str = "insufficient_funds";

/// Dispatches each entry to the handler of its stream.
#[derive(Clone)]
pub struct PaymentHandler {
    pub db: DatabaseConnection,
    pub notifier: OutboxNotifier,
    /// Cents a new wallet opens with.
    pub starting_credit_cents: i64,
}

impl Handler for PaymentHandler {
    async fn handle(&self, message: &Message) -> Result<(), HandleError> {
        let span = tracing::info_span!(
            "message",
            stream = %message.stream,
            event.id = %message.envelope.event_id,
            group = GROUP,
        );
        async move {
            match &*message.stream {
                UserRegistered::TYPE => user_registered::handle(self, &message.envelope).await,
                OrderPlaced::TYPE => order_placed::handle(self, &message.envelope).await,
                RefundOrder::TYPE => refund_order::handle(self, &message.envelope).await,
                other => Err(HandleError::dead_letter(anyhow::anyhow!(
                    "payment does not consume `{other}`"
                ))),
            }
        }
        .instrument(span)
        .await
    }
}

/// Serialises the handlers of one order inside their transactions. `order-placed` and
/// `refund-order` for the same order arrive on different streams and may run at once; without
/// this, under PostgreSQL's READ COMMITTED each could miss the other's uncommitted row (the
/// refund sees no payment and writes a tombstone, the charge sees no tombstone and debits), and a
/// cancelled order would be charged. A transaction-scoped advisory lock on the order makes the
/// second wait for the first to commit and then see its effect. On SQLite the inbox insert that
/// opens every handler's transaction already holds the database's single write lock.
pub(crate) async fn lock_order(txn: &DatabaseTransaction, order_id: Uuid) -> Result<(), DbErr> {
    if txn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let (hi, lo) = order_id.as_u64_pair();
    // A 64-bit key from the UUID's two halves; a rare collision only makes two orders wait.
    let key = (hi ^ lo) as i64;
    txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({key})"))
        .await?;
    Ok(())
}
