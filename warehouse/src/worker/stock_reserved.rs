//! `stock-reserved`: the order is paid and its stock set aside, so it gets a shipment. With
//! auto-dispatch on, the shipment is shipped at once (`pending → shipped`) and `order-shipped`
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
    let Some(created) = shipping::create(&txn, order.order_id, order.user_id, &order.items).await?
    else {
        // Recording the event id still matters: the next redelivery stops at the inbox.
        txn.commit().await?;
        tracing::info!(order.id = %order.order_id, "order has a shipment already; nothing to do");
        return Ok(());
    };
    let shipped = if h.settings.auto_dispatch {
        let dispatch = Dispatch::with_carrier(&h.settings.carrier);
        let shipped = shipping::ship(&txn, created.id, &dispatch)
            .await?
            .context("a shipment created in this transaction is not pending")?;
        let payload = shipping::order_shipped(&shipped);
        let event = envelope
            .follow_up_event(SERVICE, &payload)
            .context("encode order-shipped")?;
        outbox::enqueue_event(&txn, &event).await?;
        true
    } else {
        false
    };
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
