//! The `warehouse` binary: `warehouse [serve]` runs the service, `warehouse migrate` migrates its
//! database. Everything else lives in the library, so tests run the same code.

use clap::Parser;
use common::{config::MeshArgs, service::Command};
use warehouse::WarehouseArgs;

/// Shipments of the mesh.
#[derive(Debug, Parser)]
#[command(name = warehouse::SERVICE, version)]
struct Cli {
    #[command(flatten)]
    args: MeshArgs,
    #[command(flatten)]
    warehouse: WarehouseArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Cli {
        args,
        warehouse,
        command,
    } = Cli::parse();
    common::service::main::<warehouse::Migrator, _, _>(
        warehouse::SERVICE,
        warehouse::DEFAULT_PORT,
        args,
        command,
        move |args, listener, shutdown| warehouse::run_with(args, warehouse, listener, shutdown),
    )
    .await
}
