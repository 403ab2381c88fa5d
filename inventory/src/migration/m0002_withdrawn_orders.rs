//! Orders refunded before their stock was reserved (a customer cancelled a paid order whose
//! `order-completed` had not reached inventory yet). A later `order-completed` for such an order
//! must not take stock.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveIden)]
enum WithdrawnOrders {
    Table,
    OrderId,
    Reason,
    CreatedAt,
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WithdrawnOrders::Table)
                    .if_not_exists()
                    .col(uuid(WithdrawnOrders::OrderId).primary_key())
                    .col(string_len(WithdrawnOrders::Reason, 64))
                    .col(big_integer(WithdrawnOrders::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WithdrawnOrders::Table).to_owned())
            .await
    }
}
