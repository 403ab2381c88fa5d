//! The `inventory` binary: `inventory [serve]` runs the service, `inventory migrate` migrates its database.
//! Everything else lives in the library, so tests run the same code.

use clap::Parser;
use common::{config::MeshArgs, service::Command};

/// Products, stock and reservations of the mesh.
#[derive(Debug, Parser)]
#[command(name = inventory::SERVICE, version)]
struct Cli {
    #[command(flatten)]
    args: MeshArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Cli { args, command } = Cli::parse();
    common::service::main::<inventory::Migrator, _, _>(
        inventory::SERVICE,
        inventory::DEFAULT_PORT,
        args,
        command,
        inventory::run,
    )
    .await
}
