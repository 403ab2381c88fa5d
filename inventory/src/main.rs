//! The `inventory` binary: `inventory [serve]` runs the service, `inventory migrate` migrates its
//! database. Everything else lives in the library (`inventory::Inventory`), so tests run the same
//! code.

fn main() -> anyhow::Result<()> {
    common::service::main::<inventory::Inventory>()
}
