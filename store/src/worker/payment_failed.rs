//! `payment-failed`: the payment was refused; terminal.

use common::{Envelope, events::PaymentFailed, runtime::HandleError};

use super::{StoreHandler, advance};
use crate::status::OrderStatus;

pub(super) async fn handle(
    h: &StoreHandler,
    envelope: &Envelope,
    failed: PaymentFailed,
) -> Result<(), HandleError> {
    let reason = format!("payment failed: {}", failed.reason);
    advance(
        h,
        envelope,
        failed.order_id,
        OrderStatus::PaymentFailed,
        &reason,
    )
    .await
}
