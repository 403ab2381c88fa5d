//! The payment of one order (at most one per order: `order_id` is unique).

use sea_orm::entity::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

/// The wallet was debited.
pub const CAPTURED: &str = "captured";
/// The wallet could not cover the order; nothing was debited.
pub const FAILED: &str = "failed";
/// Captured, then given back.
pub const REFUNDED: &str = "refunded";

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, ToSchema)]
#[schema(as = Payment)]
#[sea_orm(table_name = "payments")]
pub struct Model {
    /// UUIDv7, carried by `order-completed` and `payment-refunded`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub order_id: Uuid,
    pub user_id: Uuid,
    /// The order total.
    pub amount_cents: i64,
    /// [`CAPTURED`], [`FAILED`] or [`REFUNDED`].
    pub status: String,
    /// Why a payment failed (`insufficient_funds`) or was refunded (the refund reason).
    pub reason: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTimeUtc,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
