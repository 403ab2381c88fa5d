//! Migrations of the user database: the runtime's tables (inbox, outbox) first, then accounts,
//! refresh tokens and password resets.

use sea_orm_migration::{MigrationTrait, MigratorTrait};

mod m0001_accounts;
mod m0002_expiry_indexes;

/// Migrations of this service's database, in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut migrations = common::db::migration::runtime_migrations();
        migrations.push(Box::new(m0001_accounts::Migration));
        migrations.push(Box::new(m0002_expiry_indexes::Migration));
        migrations
    }
}
