//! A tombstone: the order was refunded (cancelled) before payment saw its `order-placed`, so a
//! later `order-placed` for it must never be charged.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "cancelled_orders")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub order_id: Uuid,
    pub user_id: Uuid,
    /// The refund reason, as in the event (`cancelled_by_customer`, …).
    pub reason: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
