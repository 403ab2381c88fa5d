//! The inventory's migrations, applied after the runtime's own (inbox, outbox) by
//! [`crate::Migrator`]. One file per migration; names are never changed once released.

mod m0001_catalog;
mod m0002_withdrawn_orders;

use sea_orm_migration::MigrationTrait;

/// The service's own migrations, in order.
pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![
        Box::new(m0001_catalog::Migration),
        Box::new(m0002_withdrawn_orders::Migration),
    ]
}
