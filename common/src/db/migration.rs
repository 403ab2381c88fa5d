//! Migrations of the runtime's tables. Each service lists [`runtime_migrations`] first in its own
//! migrator, so every service database has an inbox and an outbox.

use sea_orm_migration::{prelude::*, schema::*};

/// The runtime's migrations, in order.
pub fn runtime_migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![Box::new(CreateInboxAndOutbox)]
}

/// A migrator with only the runtime's tables (tests and tools).
pub struct RuntimeMigrator;

impl MigratorTrait for RuntimeMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        runtime_migrations()
    }
}

#[derive(DeriveIden)]
enum MeshInbox {
    Table,
    ConsumerGroup,
    EventId,
    ProcessedAt,
}

#[derive(DeriveIden)]
enum MeshOutbox {
    Table,
    Id,
    EventId,
    Stream,
    Fields,
    CreatedAt,
}

pub struct CreateInboxAndOutbox;

impl MigrationName for CreateInboxAndOutbox {
    fn name(&self) -> &str {
        "m0001_mesh_inbox_outbox"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateInboxAndOutbox {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MeshInbox::Table)
                    .if_not_exists()
                    .col(string_len(MeshInbox::ConsumerGroup, 128))
                    .col(string_len(MeshInbox::EventId, 64))
                    .col(big_integer(MeshInbox::ProcessedAt))
                    .primary_key(
                        Index::create()
                            .col(MeshInbox::ConsumerGroup)
                            .col(MeshInbox::EventId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MeshOutbox::Table)
                    .if_not_exists()
                    .col(big_pk_auto(MeshOutbox::Id))
                    .col(string_len(MeshOutbox::EventId, 64))
                    .col(string_len(MeshOutbox::Stream, 128))
                    .col(text(MeshOutbox::Fields))
                    .col(big_integer(MeshOutbox::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MeshOutbox::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(MeshInbox::Table).to_owned())
            .await
    }
}
