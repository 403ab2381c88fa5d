//! Wallets, the deposit ledger, payments, refunds and cancelled-order tombstones. Portable
//! between SQLite and PostgreSQL: UUIDs, `BIGINT` cents, and `CHECK`s as the last line of
//! defence behind the conditional updates (a balance never goes negative).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveIden)]
enum Wallets {
    Table,
    UserId,
    BalanceCents,
    OpeningCreditCents,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Deposits {
    Table,
    Id,
    UserId,
    AmountCents,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Payments {
    Table,
    Id,
    OrderId,
    UserId,
    AmountCents,
    Status,
    Reason,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Refunds {
    Table,
    Id,
    PaymentId,
    OrderId,
    AmountCents,
    Reason,
    EventId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum CancelledOrders {
    Table,
    OrderId,
    UserId,
    Reason,
    CreatedAt,
}

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0001_payment_wallets"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Wallets::Table)
                    .if_not_exists()
                    .col(uuid(Wallets::UserId).primary_key())
                    .col(big_integer(Wallets::BalanceCents))
                    .col(big_integer(Wallets::OpeningCreditCents))
                    .col(timestamp_with_time_zone(Wallets::CreatedAt))
                    .col(timestamp_with_time_zone(Wallets::UpdatedAt))
                    .check((
                        "wallets_balance_not_negative",
                        Expr::col(Wallets::BalanceCents).gte(0),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Deposits::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Deposits::Id))
                    .col(uuid(Deposits::UserId))
                    .col(big_integer(Deposits::AmountCents))
                    .col(timestamp_with_time_zone(Deposits::CreatedAt))
                    .check((
                        "deposits_amount_positive",
                        Expr::col(Deposits::AmountCents).gt(0),
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("deposits_wallet")
                            .from(Deposits::Table, Deposits::UserId)
                            .to(Wallets::Table, Wallets::UserId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("deposits_by_user")
                    .table(Deposits::Table)
                    .col(Deposits::UserId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Payments::Table)
                    .if_not_exists()
                    .col(uuid(Payments::Id).primary_key())
                    .col(uuid_uniq(Payments::OrderId))
                    .col(uuid(Payments::UserId))
                    .col(big_integer(Payments::AmountCents))
                    .col(string_len(Payments::Status, 16))
                    .col(string_len_null(Payments::Reason, 64))
                    .col(timestamp_with_time_zone(Payments::CreatedAt))
                    .col(timestamp_with_time_zone(Payments::UpdatedAt))
                    .check((
                        "payments_amount_not_negative",
                        Expr::col(Payments::AmountCents).gte(0),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("payments_by_user")
                    .table(Payments::Table)
                    .col(Payments::UserId)
                    .col(Payments::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Refunds::Table)
                    .if_not_exists()
                    .col(uuid(Refunds::Id).primary_key())
                    .col(uuid_uniq(Refunds::PaymentId))
                    .col(uuid(Refunds::OrderId))
                    .col(big_integer(Refunds::AmountCents))
                    .col(string_len(Refunds::Reason, 64))
                    .col(string_len(Refunds::EventId, 64))
                    .col(timestamp_with_time_zone(Refunds::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("refunds_payment")
                            .from(Refunds::Table, Refunds::PaymentId)
                            .to(Payments::Table, Payments::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CancelledOrders::Table)
                    .if_not_exists()
                    .col(uuid(CancelledOrders::OrderId).primary_key())
                    .col(uuid(CancelledOrders::UserId))
                    .col(string_len(CancelledOrders::Reason, 64))
                    .col(timestamp_with_time_zone(CancelledOrders::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            CancelledOrders::Table.into_iden(),
            Refunds::Table.into_iden(),
            Payments::Table.into_iden(),
            Deposits::Table.into_iden(),
            Wallets::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
