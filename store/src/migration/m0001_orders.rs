//! The catalog projection, orders, their lines and status history. Portable between SQLite and
//! PostgreSQL: UUIDs, `BIGINT` cents, and a unique `(user_id, idempotency_key)` that makes a
//! concurrent client retry lose the race instead of creating a second order (NULL keys never
//! collide).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveIden)]
enum CatalogProducts {
    Table,
    ProductId,
    Name,
    PriceCents,
    Active,
    Revision,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    Id,
    UserId,
    Status,
    SubtotalCents,
    FeeCents,
    TotalCents,
    IdempotencyKey,
    RequestHash,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum OrderLines {
    Table,
    OrderId,
    ProductId,
    Name,
    Quantity,
    UnitPriceCents,
    LineTotalCents,
}

#[derive(DeriveIden)]
enum OrderStatusHistory {
    Table,
    Id,
    OrderId,
    Status,
    Reason,
    EventId,
    At,
}

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0001_store_orders"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CatalogProducts::Table)
                    .if_not_exists()
                    .col(uuid(CatalogProducts::ProductId).primary_key())
                    .col(string_len(CatalogProducts::Name, 200))
                    .col(big_integer(CatalogProducts::PriceCents))
                    .col(boolean(CatalogProducts::Active))
                    .col(big_integer(CatalogProducts::Revision))
                    .col(timestamp_with_time_zone(CatalogProducts::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Orders::Table)
                    .if_not_exists()
                    .col(uuid(Orders::Id).primary_key())
                    .col(uuid(Orders::UserId))
                    .col(string_len(Orders::Status, 32))
                    .col(big_integer(Orders::SubtotalCents))
                    .col(big_integer(Orders::FeeCents))
                    .col(big_integer(Orders::TotalCents))
                    .col(string_len_null(Orders::IdempotencyKey, 255))
                    .col(string_len_null(Orders::RequestHash, 64))
                    .col(timestamp_with_time_zone(Orders::CreatedAt))
                    .col(timestamp_with_time_zone(Orders::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("orders_idempotency_key")
                    .table(Orders::Table)
                    .col(Orders::UserId)
                    .col(Orders::IdempotencyKey)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("orders_by_status")
                    .table(Orders::Table)
                    .col(Orders::Status)
                    .col(Orders::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(OrderLines::Table)
                    .if_not_exists()
                    .col(uuid(OrderLines::OrderId))
                    .col(uuid(OrderLines::ProductId))
                    .col(string_len(OrderLines::Name, 200))
                    .col(big_integer(OrderLines::Quantity))
                    .col(big_integer(OrderLines::UnitPriceCents))
                    .col(big_integer(OrderLines::LineTotalCents))
                    .primary_key(
                        Index::create()
                            .col(OrderLines::OrderId)
                            .col(OrderLines::ProductId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("order_lines_order")
                            .from(OrderLines::Table, OrderLines::OrderId)
                            .to(Orders::Table, Orders::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(OrderStatusHistory::Table)
                    .if_not_exists()
                    .col(big_pk_auto(OrderStatusHistory::Id))
                    .col(uuid(OrderStatusHistory::OrderId))
                    .col(string_len(OrderStatusHistory::Status, 32))
                    .col(string_len(OrderStatusHistory::Reason, 300))
                    .col(string_len_null(OrderStatusHistory::EventId, 64))
                    .col(timestamp_with_time_zone(OrderStatusHistory::At))
                    .foreign_key(
                        ForeignKey::create()
                            .name("order_status_history_order")
                            .from(OrderStatusHistory::Table, OrderStatusHistory::OrderId)
                            .to(Orders::Table, Orders::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("order_status_history_by_order")
                    .table(OrderStatusHistory::Table)
                    .col(OrderStatusHistory::OrderId)
                    .col(OrderStatusHistory::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            OrderStatusHistory::Table.into_iden(),
            OrderLines::Table.into_iden(),
            Orders::Table.into_iden(),
            CatalogProducts::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
