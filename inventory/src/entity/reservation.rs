//! Units of one product held for one paid order, until shipped or released.

use sea_orm::entity::prelude::*;

/// A reservation holds stock.
pub const RESERVED: &str = "reserved";
/// The stock went back on the shelf (the order was refunded after it was reserved).
pub const RELEASED: &str = "released";

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reservations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub order_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub product_id: Uuid,
    pub quantity: i64,
    /// [`RESERVED`] or [`RELEASED`].
    pub status: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
