//! A product of the catalog with its stock on hand.

use sea_orm::entity::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, ToSchema)]
#[schema(as = Product)]
#[sea_orm(table_name = "products")]
pub struct Model {
    /// UUIDv7, so ordering by id is ordering by creation.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    #[sea_orm(column_type = "Text")]
    pub description: String,
    pub price_cents: i64,
    /// Units on hand, never negative (a `CHECK` and conditional updates keep it so).
    pub stock: i64,
    /// `false` once deleted: kept for the ledger and old orders, never reservable.
    pub active: bool,
    /// Bumped on every catalog change; `product-changed` carries it so projections can skip
    /// stale updates.
    pub revision: i64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTimeUtc,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
