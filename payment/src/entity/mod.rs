//! The payment service's tables as sea-orm entities: [`wallet`] (one balance per user),
//! [`deposit`] (the ledger of money paid in), [`payment`] (one per order, captured, failed or
//! refunded), [`refund`] (at most one per payment) and [`cancelled_order`] (tombstones of orders
//! refunded before they were charged). Their schema is created by `crate::migration`.

pub mod cancelled_order;
pub mod deposit;
pub mod payment;
pub mod refund;
pub mod wallet;
