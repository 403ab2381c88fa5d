//! `order-completed`: the order is paid.

use common::{Envelope, events::OrderCompleted, runtime::HandleError};

use super::{StoreHandler, advance};
use crate::status::OrderStatus;

pub(super) async fn handle(
    h: &StoreHandler,
    envelope: &Envelope,
    paid: OrderCompleted,
) -> Result<(), HandleError> {
    let reason = format!("payment {} captured", paid.payment_id);
    advance(h, envelope, paid.order_id, OrderStatus::Paid, &reason).await
}
