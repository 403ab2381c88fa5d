//! Migrations of the user database, applied after the runtime's own (inbox, outbox) by
//! [`crate::Migrator`]: accounts, refresh tokens and password resets.

use sea_orm_migration::MigrationTrait;

mod m0001_accounts;
mod m0002_expiry_indexes;

/// The service's own migrations, in order.
pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![
        Box::new(m0001_accounts::Migration),
        Box::new(m0002_expiry_indexes::Migration),
    ]
}
