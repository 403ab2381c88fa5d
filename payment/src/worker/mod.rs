//! The payment service's consumer group (`payment`): one handler per event type, declared in
//! [`routes`] —
//! [`user_registered`] opens the wallet, [`order_placed`] charges it, [`refund_order`] gives a
//! captured payment back (or tombstones an order not charged yet). Each applies its effect, the
//! inbox record and the follow-up event in one transaction.

mod order_placed;
mod refund_order;
mod user_registered;

use common::{
    db::outbox::OutboxNotifier,
    events::{OrderPlaced, RefundOrder, UserRegistered},
    runtime::Routes,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr};
use uuid::Uuid;

/// The consumer group of the payment service on every stream it reads.
pub const GROUP: &str = crate::SERVICE;

/// `reason` of a `payment-failed` when the wallet cannot cover the order.
pub const INSUFFICIENT_FUNDS: &str = "insufficient_funds";

/// The event handlers of the group; their streams are the ones the payment service reads.
pub fn routes() -> Routes<PaymentHandler> {
    Routes::new(GROUP)
        .on::<UserRegistered>(user_registered::handle)
        .on::<OrderPlaced>(order_placed::handle)
        .on::<RefundOrder>(refund_order::handle)
}

/// What the payment service's event handlers share.
#[derive(Clone)]
pub struct PaymentHandler {
    pub db: DatabaseConnection,
    pub notifier: OutboxNotifier,
    /// Cents a new wallet opens with.
    pub starting_credit_cents: i64,
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
