//! `refund-order`: someone asked for the order's money back. The status changes only when the
//! money is back (`payment-refunded`), except for a customer's cancellation of an order still
//! `pending`, which is cancelled outright (payment keeps a tombstone and never charges it).
//! Otherwise the request is recorded in the history with its reason. The store's own
//! `refund-order`s (from `POST /orders/{id}/cancel`) were recorded when they were made.

use anyhow::anyhow;
use common::{
    Envelope,
    db::inbox,
    events::{RefundOrder, RefundReason},
    runtime::HandleError,
};

use super::{GROUP, StoreHandler};
use crate::{
    SERVICE,
    orders::{self, Transition},
    status::OrderStatus,
};

pub(super) async fn handle(
    h: &StoreHandler,
    envelope: &Envelope,
    refund: RefundOrder,
) -> Result<(), HandleError> {
    let Some(txn) = inbox::begin_once(&h.db, GROUP, envelope).await? else {
        return Ok(());
    };
    let event_id = envelope.event_id.to_string();
    let reason = refund.reason.as_str();
    let no_order = || {
        HandleError::dead_letter(anyhow!(
            "no order {} (refund-order {})",
            refund.order_id,
            envelope.event_id
        ))
    };
    if refund.reason == RefundReason::CancelledByCustomer {
        match orders::transition(
            &txn,
            refund.order_id,
            OrderStatus::Cancelled,
            reason,
            Some(&event_id),
        )
        .await?
        {
            Transition::Applied => {
                txn.commit().await?;
                tracing::info!(order.id = %refund.order_id, "order cancelled");
                return Ok(());
            }
            Transition::NoOrder => return Err(no_order()),
            Transition::Ignored(_) => {}
        }
    }
    if envelope.producer != SERVICE {
        let note = format!("refund requested: {reason}");
        if orders::note(&txn, refund.order_id, &note, Some(&event_id))
            .await?
            .is_none()
        {
            return Err(no_order());
        }
    }
    txn.commit().await?;
    tracing::info!(order.id = %refund.order_id, reason, "refund requested");
    Ok(())
}
