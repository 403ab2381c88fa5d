//! `refund-order`: give a captured payment back exactly once — the payment flips
//! `captured → refunded` with a conditional update, the refund row is unique per payment, and
//! the balance is credited with a single statement, all in one transaction with the inbox record
//! and `payment-refunded`. An order with no payment yet gets a tombstone so its late
//! `order-placed` is never charged; a failed or already refunded payment needs nothing. A
//! customer's cancellation (`cancelled_by_customer`) of an order already charged refunds nothing
//! here: the warehouse decides whether the goods left (`common::events::RefundReason`).

use anyhow::Context as _;
use common::{
    Envelope,
    db::{inbox, outbox},
    events::{PaymentRefunded, RefundOrder, RefundReason},
    runtime::HandleError,
};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use uuid::Uuid;

use super::{GROUP, PaymentHandler};
use crate::{
    SERVICE,
    entity::{cancelled_order, payment, refund},
    ledger,
};

pub(super) async fn handle(
    h: &PaymentHandler,
    envelope: &Envelope,
    request: RefundOrder,
) -> Result<(), HandleError> {
    let reason = request.reason.as_str();
    let Some(txn) = inbox::begin_once(&h.db, GROUP, envelope).await? else {
        tracing::debug!(order.id = %request.order_id, "already handled");
        return Ok(());
    };
    super::lock_order(&txn, request.order_id).await?;
    let existing = payment::Entity::find()
        .filter(payment::Column::OrderId.eq(request.order_id))
        .one(&txn)
        .await?;
    let Some(paid) = existing else {
        let now = chrono::Utc::now();
        cancelled_order::Entity::insert(cancelled_order::ActiveModel {
            order_id: Set(request.order_id),
            user_id: Set(request.user_id),
            reason: Set(reason.to_owned()),
            created_at: Set(now),
        })
        .on_conflict_do_nothing()
        .exec_without_returning(&txn)
        .await?;
        txn.commit().await?;
        tracing::info!(order.id = %request.order_id, reason, "no payment yet; order tombstoned");
        return Ok(());
    };
    if request.reason == RefundReason::CancelledByCustomer {
        // Charged already: the goods may be on their way. The warehouse rules on the
        // cancellation and, if nothing has shipped, asks again with `cancelled_before_shipping`.
        txn.commit().await?;
        tracing::info!(order.id = %request.order_id, "cancellation requested for a charged order; waiting for the warehouse");
        return Ok(());
    }
    if paid.status != payment::CAPTURED {
        txn.commit().await?;
        tracing::debug!(order.id = %request.order_id, status = paid.status, "nothing to refund");
        return Ok(());
    }

    let now = chrono::Utc::now();
    let flipped = payment::Entity::update_many()
        .col_expr(payment::Column::Status, Expr::value(payment::REFUNDED))
        .col_expr(payment::Column::Reason, Expr::value(reason))
        .col_expr(payment::Column::UpdatedAt, Expr::value(now))
        .filter(payment::Column::Id.eq(paid.id))
        .filter(payment::Column::Status.eq(payment::CAPTURED))
        .exec(&txn)
        .await?
        .rows_affected;
    if flipped != 1 {
        // Refunded concurrently under another event id.
        txn.commit().await?;
        return Ok(());
    }
    refund::Entity::insert(refund::ActiveModel {
        id: Set(Uuid::now_v7()),
        payment_id: Set(paid.id),
        order_id: Set(paid.order_id),
        amount_cents: Set(paid.amount_cents),
        reason: Set(reason.to_owned()),
        event_id: Set(envelope.event_id.to_string()),
        created_at: Set(now),
    })
    .exec_without_returning(&txn)
    .await?;
    if !ledger::credit(&txn, paid.user_id, paid.amount_cents).await? {
        // A captured payment always has a wallet; if not, something is badly wrong: keep the
        // money where it is and let an operator look at the dead letter.
        return Err(HandleError::dead_letter(anyhow::anyhow!(
            "payment {} has no wallet for user {}",
            paid.id,
            paid.user_id
        )));
    }
    let payload = PaymentRefunded {
        order_id: paid.order_id,
        user_id: paid.user_id,
        payment_id: paid.id,
        amount_cents: paid.amount_cents,
    };
    let event = envelope
        .follow_up_event(SERVICE, &payload)
        .context("encode follow-up event")?;
    outbox::enqueue_event(&txn, &event).await?;
    txn.commit().await?;
    h.notifier.notify();
    metrics::counter!("payment_payments_refunded_total").increment(1);
    tracing::info!(
        order.id = %paid.order_id,
        payment.id = %paid.id,
        amount_cents = paid.amount_cents,
        reason,
        "payment refunded"
    );
    Ok(())
}
