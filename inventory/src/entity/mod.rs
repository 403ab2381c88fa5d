//! The inventory's tables as sea-orm entities: [`product`] (catalog and stock on hand),
//! [`stock_movement`] (the append-only ledger of every stock change) and [`reservation`]
//! (what each paid order holds), [`withdrawn_order`] (orders refunded before anything was
//! reserved). Their schema is created by `crate::migration`.

pub mod product;
pub mod reservation;
pub mod stock_movement;
pub mod withdrawn_order;
