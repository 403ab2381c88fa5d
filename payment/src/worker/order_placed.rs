//! `order-placed`: charge the wallet with ONE conditional debit, in one transaction with the
//! inbox record, the payment row and the follow-up event: `order-completed` when the debit
//! succeeds, `payment-failed` (`insufficient_funds`) when the balance is short. An order
//! cancelled before it got here (a tombstone) is never charged; a wallet that is not open yet
//! (its `user-registered` is still on the way) is a retry, not a failure.

use anyhow::{Context as _, anyhow};
use common::{
    Envelope,
    db::{inbox, outbox},
    events::{OrderCompleted, OrderPlaced, PaymentFailed},
    runtime::HandleError,
};
use sea_orm::{ActiveValue::Set, EntityTrait};
use uuid::Uuid;

use super::{GROUP, INSUFFICIENT_FUNDS, PaymentHandler};
use crate::{
    SERVICE,
    entity::payment,
    ledger::{self, Prior},
};

pub(super) async fn handle(
    h: &PaymentHandler,
    envelope: &Envelope,
    order: OrderPlaced,
) -> Result<(), HandleError> {
    if order.total_cents < 0 {
        return Err(HandleError::dead_letter(anyhow!(
            "order {} has a negative total {}",
            order.order_id,
            order.total_cents
        )));
    }
    let Some(txn) = inbox::begin_once(&h.db, GROUP, envelope).await? else {
        tracing::debug!(order.id = %order.order_id, "already handled");
        return Ok(());
    };
    super::lock_order(&txn, order.order_id).await?;
    match ledger::prior_outcome(&txn, order.order_id).await? {
        Some(Prior::Cancelled) => {
            // Cancelled before payment saw it: the store already shows it cancelled; record the
            // event as handled and charge nothing.
            txn.commit().await?;
            tracing::info!(order.id = %order.order_id, "order was cancelled before payment; not charged");
            metrics::counter!("payment_orders_skipped_cancelled_total").increment(1);
            return Ok(());
        }
        Some(Prior::Paid) => {
            // The same order announced again under another event id: its outcome was decided
            // (and published) the first time.
            txn.commit().await?;
            tracing::info!(order.id = %order.order_id, "order already has a payment; nothing to do");
            return Ok(());
        }
        None => {}
    }

    let captured = ledger::debit(&txn, order.user_id, order.total_cents).await?;
    if !captured && ledger::wallet(&txn, order.user_id).await?.is_none() {
        // Dropping the transaction also drops the inbox record: the redelivery starts afresh.
        txn.rollback().await?;
        return Err(HandleError::retry(anyhow!(
            "the wallet of user {} is not open yet",
            order.user_id
        )));
    }

    let payment_id = Uuid::now_v7();
    let now = chrono::Utc::now();
    let (status, reason) = if captured {
        (payment::CAPTURED, None)
    } else {
        (payment::FAILED, Some(INSUFFICIENT_FUNDS.to_owned()))
    };
    payment::Entity::insert(payment::ActiveModel {
        id: Set(payment_id),
        order_id: Set(order.order_id),
        user_id: Set(order.user_id),
        amount_cents: Set(order.total_cents),
        status: Set(status.to_owned()),
        reason: Set(reason),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(&txn)
    .await?;

    if captured {
        let payload = OrderCompleted {
            order_id: order.order_id,
            user_id: order.user_id,
            payment_id,
            items: order.items.clone(),
            total_cents: order.total_cents,
        };
        let event = envelope
            .follow_up_event(SERVICE, &payload)
            .context("encode follow-up event")?;
        outbox::enqueue_event(&txn, &event).await?;
    } else {
        let payload = PaymentFailed {
            order_id: order.order_id,
            user_id: order.user_id,
            reason: INSUFFICIENT_FUNDS.to_owned(),
        };
        let event = envelope
            .follow_up_event(SERVICE, &payload)
            .context("encode follow-up event")?;
        outbox::enqueue_event(&txn, &event).await?;
    }
    txn.commit().await?;
    h.notifier.notify();
    if captured {
        metrics::counter!("payment_payments_captured_total").increment(1);
        tracing::info!(
            order.id = %order.order_id,
            payment.id = %payment_id,
            amount_cents = order.total_cents,
            "payment captured"
        );
    } else {
        metrics::counter!("payment_payments_failed_total").increment(1);
        tracing::info!(
            order.id = %order.order_id,
            amount_cents = order.total_cents,
            "insufficient funds; payment failed"
        );
    }
    Ok(())
}
