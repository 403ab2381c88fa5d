//! The store's tables as sea-orm entities: [`catalog_product`] (the projection of inventory's
//! catalog that orders are priced from), [`order`] with its [`order_line`]s, and
//! [`order_status_history`] (every transition and request, append-only). Their schema is created
//! by `crate::migration`.

pub mod catalog_product;
pub mod order;
pub mod order_line;
pub mod order_status_history;
