//! Products, the stock movement ledger and reservations. Portable between SQLite and PostgreSQL:
//! UUIDs, `BIGINT` counters and a `CHECK (stock >= 0)` as the last line of defence behind the
//! conditional updates.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveIden)]
enum Products {
    Table,
    Id,
    Name,
    Description,
    PriceCents,
    Stock,
    Active,
    Revision,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum StockMovements {
    Table,
    Id,
    ProductId,
    Delta,
    Reason,
    OrderId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Reservations {
    Table,
    OrderId,
    ProductId,
    Quantity,
    Status,
    CreatedAt,
    UpdatedAt,
}

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0001_inventory_catalog"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Products::Table)
                    .if_not_exists()
                    .col(uuid(Products::Id).primary_key())
                    .col(string_len(Products::Name, 200))
                    .col(text(Products::Description))
                    .col(big_integer(Products::PriceCents))
                    .col(big_integer(Products::Stock))
                    .col(boolean(Products::Active))
                    .col(big_integer(Products::Revision))
                    .col(timestamp_with_time_zone(Products::CreatedAt))
                    .col(timestamp_with_time_zone(Products::UpdatedAt))
                    .check((
                        "products_stock_not_negative",
                        Expr::col(Products::Stock).gte(0),
                    ))
                    .check((
                        "products_price_not_negative",
                        Expr::col(Products::PriceCents).gte(0),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(StockMovements::Table)
                    .if_not_exists()
                    .col(big_pk_auto(StockMovements::Id))
                    .col(uuid(StockMovements::ProductId))
                    .col(big_integer(StockMovements::Delta))
                    .col(string_len(StockMovements::Reason, 200))
                    .col(uuid_null(StockMovements::OrderId))
                    .col(timestamp_with_time_zone(StockMovements::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("stock_movements_product")
                            .from(StockMovements::Table, StockMovements::ProductId)
                            .to(Products::Table, Products::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("stock_movements_by_product")
                    .table(StockMovements::Table)
                    .col(StockMovements::ProductId)
                    .col(StockMovements::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Reservations::Table)
                    .if_not_exists()
                    .col(uuid(Reservations::OrderId))
                    .col(uuid(Reservations::ProductId))
                    .col(big_integer(Reservations::Quantity))
                    .col(string_len(Reservations::Status, 16))
                    .col(timestamp_with_time_zone(Reservations::CreatedAt))
                    .col(timestamp_with_time_zone(Reservations::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(Reservations::OrderId)
                            .col(Reservations::ProductId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("reservations_product")
                            .from(Reservations::Table, Reservations::ProductId)
                            .to(Products::Table, Products::Id),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Reservations::Table.into_iden(),
            StockMovements::Table.into_iden(),
            Products::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
