//! A user's wallet: opened on `user-registered`, debited by payments, credited by deposits and
//! refunds. The balance only ever changes with single-statement conditional updates.

use sea_orm::entity::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, ToSchema)]
#[schema(as = Wallet)]
#[sea_orm(table_name = "wallets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    /// Never negative (a `CHECK` behind the conditional debit keeps it so).
    pub balance_cents: i64,
    /// What the wallet was opened with (`MESH_STARTING_CREDIT_CENTS` at the time), so money can
    /// be accounted for even after the setting changes.
    pub opening_credit_cents: i64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTimeUtc,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
