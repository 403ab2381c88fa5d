//! The `store` binary: `store [serve]` runs the service, `store migrate` migrates its
//! database. Everything else lives in the library (`store::Store`), so tests run the same code.

fn main() -> anyhow::Result<()> {
    common::service::main::<store::Store>()
}
