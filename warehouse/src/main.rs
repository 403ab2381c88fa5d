//! The `warehouse` binary: `warehouse [serve]` runs the service, `warehouse migrate` migrates its
//! database. Everything else lives in the library (`warehouse::Warehouse`), so tests run the same code.

fn main() -> anyhow::Result<()> {
    common::service::main::<warehouse::Warehouse>()
}
