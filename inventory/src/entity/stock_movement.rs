//! One change of a product's stock. The ledger of a product sums to its stock.

use sea_orm::entity::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, ToSchema)]
#[schema(as = StockMovement)]
#[sea_orm(table_name = "stock_movements")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub product_id: Uuid,
    /// Signed: negative for reservations and removals.
    pub delta: i64,
    /// Why: `initial`, `reserved`, `released`, or an admin's free text.
    pub reason: String,
    /// The order behind a reservation or a release.
    pub order_id: Option<Uuid>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
