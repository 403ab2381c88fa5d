//! The refund of a captured payment; `payment_id` is unique, so a payment is refunded once.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refunds")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub amount_cents: i64,
    /// The reason of the `refund-order` event (`insufficient_stock`, …).
    pub reason: String,
    /// The `event_id` of the `refund-order` that caused it.
    pub event_id: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
