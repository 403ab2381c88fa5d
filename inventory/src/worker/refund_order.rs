//! `refund-order`: give back what a reserved order holds. `insufficient_stock` refunds are this
//! service's own (nothing was reserved) and are skipped, and so is a customer's
//! `cancelled_by_customer`: the warehouse rules on it and, if nothing shipped, publishes
//! `cancelled_before_shipping`, which releases. The release flips each reservation
//! `reserved → released` with a conditional update, so it happens once however often and under
//! whichever event ids the refund arrives. A refund that comes before the order's stock was
//! reserved is remembered (`withdrawn_orders`), and the later `order-completed` takes nothing.

use common::{
    Envelope,
    db::inbox,
    events::{RefundOrder, RefundReason},
    runtime::HandleError,
};

use super::{GROUP, InventoryHandler};
use crate::stock;

pub(super) async fn handle(
    h: &InventoryHandler,
    envelope: &Envelope,
    refund: RefundOrder,
) -> Result<(), HandleError> {
    // `insufficient_stock` refunds are our own; a customer's cancellation is only a request
    // until the warehouse accepts it with `cancelled_before_shipping`.
    if matches!(
        refund.reason,
        RefundReason::InsufficientStock | RefundReason::CancelledByCustomer
    ) {
        return Ok(());
    }
    let Some(txn) = inbox::begin_once(&h.db, GROUP, envelope).await? else {
        tracing::debug!(order.id = %refund.order_id, "already handled");
        return Ok(());
    };
    stock::lock_order(&txn, refund.order_id).await?;
    // Nothing reserved yet: the order's `order-completed` may still be on its way (the customer
    // cancelled a paid order); remember the refund so that it takes no stock then.
    if !stock::has_reservations(&txn, refund.order_id).await? {
        stock::withdraw(&txn, refund.order_id, refund.reason.as_str()).await?;
    }
    let released = stock::release(&txn, refund.order_id).await?;
    txn.commit().await?;
    if released > 0 {
        tracing::info!(
            order.id = %refund.order_id,
            reason = ?refund.reason,
            lines = released,
            "reservation released"
        );
        metrics::counter!("inventory_reservations_released_total").increment(1);
        h.cache.invalidate_after_commit().await;
    }
    Ok(())
}
