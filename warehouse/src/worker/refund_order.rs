//! `refund-order`: the order's money goes back, so its goods must not leave. A pending shipment
//! is cancelled; a shipped one stays shipped (it is on its way); with no shipment yet a cancelled
//! tombstone is written, so a `stock-reserved` arriving later (streams are not ordered relative to
//! each other) never ships it. `fulfillment_failed` refunds are this service's own — the shipment
//! is already `failed` — and are skipped.

use common::{
    Envelope,
    db::inbox,
    events::{RefundOrder, RefundReason},
    runtime::HandleError,
};

use super::{GROUP, WarehouseHandler};
use crate::shipping::{self, Withdrawal};

pub(super) async fn handle(h: &WarehouseHandler, envelope: &Envelope) -> Result<(), HandleError> {
    let refund: RefundOrder = envelope.payload()?;
    if refund.reason == RefundReason::FulfillmentFailed {
        return Ok(());
    }
    let Some(txn) = inbox::begin_once(&h.db, GROUP, envelope).await? else {
        tracing::debug!(order.id = %refund.order_id, "already handled");
        return Ok(());
    };
    let reason = format!("refunded: {}", reason_name(refund.reason));
    let outcome = shipping::withdraw(&txn, refund.order_id, refund.user_id, &reason).await?;
    txn.commit().await?;
    match outcome {
        Withdrawal::Cancelled => {
            metrics::counter!("warehouse_shipments_cancelled_total").increment(1);
            tracing::info!(order.id = %refund.order_id, reason, "pending shipment cancelled");
        }
        Withdrawal::Tombstoned => {
            tracing::info!(order.id = %refund.order_id, reason, "refunded before its stock was reserved; it will not ship");
        }
        Withdrawal::Unchanged => {
            tracing::info!(order.id = %refund.order_id, reason, "shipment already final; unchanged");
        }
    }
    Ok(())
}

/// The wire name of a reason (`cancelled_by_customer`), for the shipment's `reason`.
fn reason_name(reason: RefundReason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{reason:?}"))
}
