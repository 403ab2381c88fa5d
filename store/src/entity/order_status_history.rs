//! One row per status change of an order, and per request that did not change it yet (a
//! cancellation asked for, a refund announced). Ordered by `id`, which the order's row lock
//! serialises, so the history never shows a status going backwards.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "order_status_history")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub order_id: Uuid,
    /// The order's status after this entry.
    pub status: String,
    pub reason: String,
    /// The event that caused it; `None` for an HTTP request.
    pub event_id: Option<String>,
    pub at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
