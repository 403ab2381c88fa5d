//! `stock-reserved`: every line of the paid order is reserved.

use common::{Envelope, events::StockReserved, runtime::HandleError};

use super::{StoreHandler, advance};
use crate::status::OrderStatus;

pub(super) async fn handle(
    h: &StoreHandler,
    envelope: &Envelope,
    reserved: StockReserved,
) -> Result<(), HandleError> {
    advance(
        h,
        envelope,
        reserved.order_id,
        OrderStatus::Reserved,
        "stock reserved",
    )
    .await
}
