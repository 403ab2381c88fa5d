//! The payment service's migrations, applied after the runtime's own (inbox, outbox) by
//! [`crate::Migrator`]. One file per migration; names are never changed once released.

mod m0001_payments;

use sea_orm_migration::MigrationTrait;

/// The service's own migrations, in order.
pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![Box::new(m0001_payments::Migration)]
}
