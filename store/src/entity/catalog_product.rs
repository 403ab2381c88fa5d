//! One product as the store last heard of it through `product-changed`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "catalog_products")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub product_id: Uuid,
    pub name: String,
    pub price_cents: i64,
    /// `false`: deleted in inventory; it cannot be ordered.
    pub active: bool,
    /// The inventory's revision of the product; an update with a lower or equal one is stale.
    pub revision: i64,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
