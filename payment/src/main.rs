//! The `payment` binary: `payment [serve]` runs the service, `payment migrate` migrates its database.
//! Everything else lives in the library, so tests run the same code.

use clap::Parser;
use common::{config::MeshArgs, service::Command};
use payment::PaymentArgs;

/// Wallets, payments and refunds of the mesh.
#[derive(Debug, Parser)]
#[command(name = payment::SERVICE, version)]
struct Cli {
    #[command(flatten)]
    args: MeshArgs,
    #[command(flatten)]
    payment: PaymentArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Cli {
        args,
        payment,
        command,
    } = Cli::parse();
    common::service::main::<payment::Migrator, _, _>(
        payment::SERVICE,
        payment::DEFAULT_PORT,
        args,
        command,
        move |args, listener, shutdown| payment::run_with(args, payment, listener, shutdown),
    )
    .await
}
