//! The `store` binary: `store [serve]` runs the service, `store migrate` migrates its database.
//! Everything else lives in the library, so tests run the same code.

use clap::Parser;
use common::{config::MeshArgs, service::Command};
use store::StoreArgs;

/// Orders and the catalog projection of the mesh.
#[derive(Debug, Parser)]
#[command(name = store::SERVICE, version)]
struct Cli {
    #[command(flatten)]
    args: MeshArgs,
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Cli {
        args,
        store,
        command,
    } = Cli::parse();
    common::service::main::<store::Migrator, _, _>(
        store::SERVICE,
        store::DEFAULT_PORT,
        args,
        command,
        move |args, listener, shutdown| store::run_with(args, store, listener, shutdown),
    )
    .await
}
