//! `refund-order`: the order's money goes back, so its goods must not leave. A pending shipment
//! is cancelled; a shipped one stays shipped (it is on its way); with no shipment yet a cancelled
//! tombstone is written, so a `stock-reserved` arriving later (streams are not ordered relative to
//! each other) never ships it.
//!
//! A customer's cancellation (`cancelled_by_customer`) is only a request, and this service rules
//! on it (see `common::events::RefundReason`): when the goods had not left — the shipment was
//! cancelled or tombstoned in this transaction — it publishes `refund-order`
//! (`cancelled_before_shipping`) through the outbox, on which payment refunds and inventory
//! releases; when they had, nothing is published and the order ships. `fulfillment_failed` and
//! `cancelled_before_shipping` refunds are this service's own and are skipped.

use anyhow::Context as _;
use common::{
    Envelope,
    db::{inbox, outbox},
    events::{RefundOrder, RefundReason},
    runtime::HandleError,
};

use super::{GROUP, WarehouseHandler};
use crate::{
    SERVICE,
    shipping::{self, Withdrawal},
};

pub(super) async fn handle(
    h: &WarehouseHandler,
    envelope: &Envelope,
    refund: RefundOrder,
) -> Result<(), HandleError> {
    if matches!(
        refund.reason,
        RefundReason::FulfillmentFailed | RefundReason::CancelledBeforeShipping
    ) {
        return Ok(());
    }
    let Some(txn) = inbox::begin_once(&h.db, GROUP, envelope).await? else {
        tracing::debug!(order.id = %refund.order_id, "already handled");
        return Ok(());
    };
    let reason = format!("refunded: {}", refund.reason.as_str());
    let outcome = shipping::withdraw(&txn, refund.order_id, refund.user_id, &reason).await?;
    let accepted_cancellation = refund.reason == RefundReason::CancelledByCustomer
        && matches!(outcome, Withdrawal::Cancelled | Withdrawal::Tombstoned);
    if accepted_cancellation {
        let payload = RefundOrder {
            reason: RefundReason::CancelledBeforeShipping,
            ..refund.clone()
        };
        let event = envelope
            .follow_up_event(SERVICE, &payload)
            .context("encode refund-order")?;
        outbox::enqueue_event(&txn, &event).await?;
    }
    txn.commit().await?;
    if accepted_cancellation {
        h.notifier.notify();
        metrics::counter!("warehouse_cancellations_accepted_total").increment(1);
    }
    match outcome {
        Withdrawal::Cancelled => {
            metrics::counter!("warehouse_shipments_cancelled_total").increment(1);
            tracing::info!(order.id = %refund.order_id, reason, "pending shipment cancelled");
        }
        Withdrawal::Tombstoned => {
            tracing::info!(order.id = %refund.order_id, reason, "refunded before its stock was reserved; it will not ship");
        }
        Withdrawal::Unchanged if refund.reason == RefundReason::CancelledByCustomer => {
            metrics::counter!("warehouse_cancellations_rejected_total").increment(1);
            tracing::info!(order.id = %refund.order_id, "cancellation came after the shipment was final; not refunded");
        }
        Withdrawal::Unchanged => {
            tracing::info!(order.id = %refund.order_id, reason, "shipment already final; unchanged");
        }
    }
    Ok(())
}
