//! `payment-refunded`: the money went back; terminal.

use common::{Envelope, events::PaymentRefunded, runtime::HandleError};

use super::{StoreHandler, advance};
use crate::status::OrderStatus;

pub(super) async fn handle(
    h: &StoreHandler,
    envelope: &Envelope,
    refunded: PaymentRefunded,
) -> Result<(), HandleError> {
    let reason = format!(
        "payment {} refunded ({} cents)",
        refunded.payment_id, refunded.amount_cents
    );
    advance(
        h,
        envelope,
        refunded.order_id,
        OrderStatus::Refunded,
        &reason,
    )
    .await
}
