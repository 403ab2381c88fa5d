//! Migrations of the runtime's tables. Each service lists [`runtime_migrations`] first in its own
//! migrator, so every service database has an inbox and an outbox.

use sea_orm_migration::{prelude::*, schema::*};

/// The runtime's migrations, in order.
pub fn runtime_migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![Box::new(CreateInboxAndOutbox), Box::new(IndexInboxByTime)]
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

/// An index on `mesh_inbox.processed_at`, so that pruning rows past the idempotency retention
/// (`super::inbox::prune`) does not scan the table.
pub struct IndexInboxByTime;

impl MigrationName for IndexInboxByTime {
    fn name(&self) -> &str {
        "m0002_mesh_inbox_processed_at"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for IndexInboxByTime {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("mesh_inbox_processed_at")
                    .table(MeshInbox::Table)
                    .col(MeshInbox::ProcessedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("mesh_inbox_processed_at")
                    .table(MeshInbox::Table)
                    .to_owned(),
            )
            .await
    }
}
