//! The shipment of one order: created `pending` when its stock is reserved, then `shipped`
//! (dispatched with a carrier and a tracking number), `failed` (an admin gave up on it: the order
//! is refunded) or `cancelled` (the order was refunded before it left). A `cancelled` row with no
//! items is a tombstone: the refund arrived before the stock was reserved, so the order must never
//! ship.

use sea_orm::entity::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

/// Waiting for dispatch.
pub const PENDING: &str = "pending";
/// Left the warehouse; final.
pub const SHIPPED: &str = "shipped";
/// Could not be fulfilled; the order was refunded (`fulfillment_failed`). Final.
pub const FAILED: &str = "failed";
/// The order was refunded before the shipment left. Final.
pub const CANCELLED: &str = "cancelled";

/// Every status, for validating filters.
pub const STATUSES: [&str; 4] = [PENDING, SHIPPED, FAILED, CANCELLED];

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, ToSchema)]
#[schema(as = Shipment)]
#[sea_orm(table_name = "shipments")]
pub struct Model {
    /// UUIDv7, so ordering by id is ordering by creation.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// At most one shipment per order (a unique index).
    #[sea_orm(unique)]
    pub order_id: Uuid,
    pub user_id: Uuid,
    /// The order lines as `stock-reserved` carried them (`[]` for a tombstone).
    #[schema(value_type = Vec<Object>)]
    pub items: Json,
    /// `pending`, `shipped`, `failed` or `cancelled`.
    pub status: String,
    /// Set when shipped.
    pub carrier: Option<String>,
    /// Set when shipped.
    pub tracking_number: Option<String>,
    /// Why it failed or was cancelled.
    pub reason: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTimeUtc,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTimeUtc,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub shipped_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
