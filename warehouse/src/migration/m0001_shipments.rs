//! Shipments, one per order. Portable between SQLite and PostgreSQL: UUIDs, a JSON column for the
//! lines, a unique index on `order_id` (the idempotency of the worker across event ids) and a
//! `CHECK` on the status as the last line of defence behind the conditional updates.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveIden)]
enum Shipments {
    Table,
    Id,
    OrderId,
    UserId,
    Items,
    Status,
    Carrier,
    TrackingNumber,
    Reason,
    CreatedAt,
    UpdatedAt,
    ShippedAt,
}

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0001_warehouse_shipments"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Shipments::Table)
                    .if_not_exists()
                    .col(uuid(Shipments::Id).primary_key())
                    .col(uuid(Shipments::OrderId))
                    .col(uuid(Shipments::UserId))
                    .col(json(Shipments::Items))
                    .col(string_len(Shipments::Status, 16))
                    .col(string_len_null(Shipments::Carrier, 64))
                    .col(string_len_null(Shipments::TrackingNumber, 64))
                    .col(string_len_null(Shipments::Reason, 200))
                    .col(timestamp_with_time_zone(Shipments::CreatedAt))
                    .col(timestamp_with_time_zone(Shipments::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Shipments::ShippedAt))
                    .check((
                        "shipments_status_known",
                        Expr::col(Shipments::Status).is_in([
                            "pending",
                            "shipped",
                            "failed",
                            "cancelled",
                        ]),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("shipments_order_id")
                    .table(Shipments::Table)
                    .col(Shipments::OrderId)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // The admin list filters by status, newest first.
        manager
            .create_index(
                Index::create()
                    .name("shipments_by_status")
                    .table(Shipments::Table)
                    .col(Shipments::Status)
                    .col(Shipments::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Shipments::Table).to_owned())
            .await
    }
}
