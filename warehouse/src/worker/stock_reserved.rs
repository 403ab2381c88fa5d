//! `stock-reserved`: the order is paid and its stock set aside, so it gets a shipment. With
//! auto-dispatch on, the shipment is created shipped at once and `order-shipped`
//! goes to the outbox — all in one transaction with the inbox record, so a redelivery or a crash
//! before the ack can never create or ship twice. An order that already has a shipment (the same
//! order under another event id, or a refund's tombstone) gets nothing new.

use anyhow::Context as _;
use common::{
    Envelope,
    db::{inbox, outbox},
    events::StockReserved,
    runtime::HandleError,
};

use super::{GROUP, WarehouseHandler};
use crate::{
    SERVICE,
    shipping::{self, Dispatch},
};

pub(super) async fn handle(
    h: &WarehouseHandler,
    envelope: &Envelope,
    order: StockReserved,
) -> Result<(), HandleError> {
    let Some(txn) = inbox::begin_once(&h.db, GROUP, envelope).await? else {
        tracing::debug!(order.id = %order.order_id, "already handled");
        return Ok(());
    };
    let dispatch = h
        .settings
        .auto_dispatch
        .then(|| Dispatch::with_carrier(&h.settings.carrier));
    let Some(created) = shipping::create(
        &txn,
        order.order_id,
        order.user_id,
        &order.items,
        dispatch.as_ref(),
    )
    .await?
    else {
        txn.commit().await?;
        tracing::info!(order.id = %order.order_id, "order has a shipment already; nothing to do");
        return Ok(());
    };
    let shipped = dispatch.is_some();
    if shipped {
        let payload = shipping::order_shipped(&created);
        let event = envelope
            .follow_up_event(SERVICE, &payload)
            .context("encode order-shipped")?;
        outbox::enqueue_event(&txn, &event).await?;
    }
    txn.commit().await?;
    metrics::counter!("warehouse_shipments_created_total").increment(1);
    if shipped {
        h.notifier.notify();
        metrics::counter!("warehouse_shipments_shipped_total").increment(1);
    }
    tracing::info!(
        order.id = %order.order_id,
        shipment.id = %created.id,
        shipped,
        "shipment created"
    );
    Ok(())
}
