//! `order-completed`: the order is paid, take its stock. All lines or none, in one transaction
//! with the inbox record: every line is a conditional update (inside a savepoint when there are
//! several); if any line is short the savepoint is rolled back (no stock taken) and `refund-order` with reason
//! `insufficient_stock` is enqueued instead of `stock-reserved`.

use anyhow::{Context as _, anyhow};
use common::{
    Envelope,
    db::{inbox, outbox},
    events::{OrderCompleted, RefundOrder, RefundReason, StockReserved},
    runtime::HandleError,
};
use sea_orm::TransactionTrait;

use super::{GROUP, InventoryHandler};
use crate::{
    SERVICE,
    stock::{self, Prior, Reserve},
};

pub(super) async fn handle(
    h: &InventoryHandler,
    envelope: &Envelope,
    order: OrderCompleted,
) -> Result<(), HandleError> {
    // The routes checked the lines' bounds (1 to 50 lines of 1 to 1,000 units): an empty or
    // negative order was dead-lettered there.
    let lines = stock::merge_lines(order.items.iter().map(|l| (l.product_id, l.quantity)))
        .ok_or_else(|| {
            HandleError::dead_letter(anyhow!(
                "order {}: a product's quantities overflow",
                order.order_id
            ))
        })?;

    let Some(txn) = inbox::begin_once(&h.db, GROUP, envelope).await? else {
        tracing::debug!(order.id = %order.order_id, "already handled");
        return Ok(());
    };
    stock::lock_order(&txn, order.order_id).await?;
    match stock::prior_outcome(&txn, order.order_id).await? {
        // The same order announced again under another event id (a producer that lost its
        // outbox row, say) is reserved already: its outcome was published the first time.
        Some(Prior::Reserved) => {
            tracing::info!(order.id = %order.order_id, "order already reserved; nothing to do");
            txn.commit().await?;
            return Ok(());
        }
        // Refunded before it reached us (cancelled while its payment was under way): payment
        // refunds it; taking stock now would strand it in a reservation nobody releases.
        Some(Prior::Withdrawn) => {
            tracing::info!(order.id = %order.order_id, "order was refunded before its stock was reserved; taking none");
            txn.commit().await?;
            return Ok(());
        }
        None => {}
    }

    // A savepoint only where a short line could follow one already taken: a single line that
    // is short changed nothing.
    let attempt = if lines.len() > 1 {
        Some(txn.begin().await?)
    } else {
        None
    };
    let outcome = match &attempt {
        Some(attempt) => stock::reserve(attempt, order.order_id, &lines).await?,
        None => stock::reserve(&txn, order.order_id, &lines).await?,
    };
    match outcome {
        Reserve::Reserved => {
            if let Some(attempt) = attempt {
                attempt.commit().await?;
            }
            let payload = StockReserved {
                order_id: order.order_id,
                user_id: order.user_id,
                items: order.items.clone(),
            };
            let event = envelope
                .follow_up_event(SERVICE, &payload)
                .context("encode follow-up event")?;
            outbox::enqueue_event(&txn, &event).await?;
        }
        Reserve::Short(product_id) => {
            if let Some(attempt) = attempt {
                attempt.rollback().await?;
            }
            tracing::info!(
                order.id = %order.order_id,
                product.id = %product_id,
                "insufficient stock; refunding the order"
            );
            metrics::counter!("inventory_orders_short_total").increment(1);
            let payload = RefundOrder {
                order_id: order.order_id,
                user_id: order.user_id,
                reason: RefundReason::InsufficientStock,
            };
            let event = envelope
                .follow_up_event(SERVICE, &payload)
                .context("encode follow-up event")?;
            outbox::enqueue_event(&txn, &event).await?;
        }
    }
    txn.commit().await?;
    h.notifier.notify();
    if outcome == Reserve::Reserved {
        // The public list shows stock: the next read must see it taken (after the commit of
        // the batch this handler may be part of).
        h.cache.invalidate_after_commit().await;
        metrics::counter!("inventory_orders_reserved_total").increment(1);
        tracing::info!(order.id = %order.order_id, lines = lines.len(), "stock reserved");
    }
    Ok(())
}
