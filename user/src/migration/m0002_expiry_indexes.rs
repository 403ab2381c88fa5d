//! Indexes on the expiry of refresh tokens and password resets, for the housekeeping that
//! deletes what expired (`crate::housekeeping`).

use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum PasswordResets {
    Table,
    ExpiresAt,
}

/// (index name, table, column) of each index.
fn indexes() -> [(&'static str, DynIden, DynIden); 2] {
    [
        (
            "idx_refresh_tokens_expires_at",
            RefreshTokens::Table.into_iden(),
            RefreshTokens::ExpiresAt.into_iden(),
        ),
        (
            "idx_password_resets_expires_at",
            PasswordResets::Table.into_iden(),
            PasswordResets::ExpiresAt.into_iden(),
        ),
    ]
}

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0002_user_expiry_indexes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, column) in indexes() {
            manager
                .create_index(
                    Index::create()
                        .if_not_exists()
                        .name(name)
                        .table(table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, _) in indexes() {
            manager
                .drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
