//! `order-shipped`: the shipment left the warehouse.

use common::{Envelope, events::OrderShipped, runtime::HandleError};

use super::{StoreHandler, advance};
use crate::status::OrderStatus;

pub(super) async fn handle(
    h: &StoreHandler,
    envelope: &Envelope,
    shipped: OrderShipped,
) -> Result<(), HandleError> {
    let reason = format!(
        "shipped by {} (tracking {}, shipment {})",
        shipped.carrier, shipped.tracking_number, shipped.shipment_id
    );
    advance(h, envelope, shipped.order_id, OrderStatus::Shipped, &reason).await
}
