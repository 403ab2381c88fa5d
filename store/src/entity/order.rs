//! An order: who placed it, where it stands in the saga, and what it costs.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "orders")]
pub struct Model {
    /// UUIDv7, so ordering by id is ordering by creation.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    /// One of [`crate::status::OrderStatus`], as its snake_case name.
    pub status: String,
    pub subtotal_cents: i64,
    pub fee_cents: i64,
    pub total_cents: i64,
    /// The client's `Idempotency-Key`, unique per user.
    pub idempotency_key: Option<String>,
    /// SHA-256 (hex) of the normalised items the key was first used with.
    pub request_hash: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
