//! The `payment` binary: `payment [serve]` runs the service, `payment migrate` migrates its
//! database. Everything else lives in the library (`payment::Payment`), so tests run the same code.

fn main() -> anyhow::Result<()> {
    common::service::main::<payment::Payment>()
}
