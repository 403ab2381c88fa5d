//! The warehouse's tables as sea-orm entities: [`shipment`], one row per order. Their schema is
//! created by `crate::migration`.

pub mod shipment;
