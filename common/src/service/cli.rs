//! [`main`], the body of every service's `main.rs`: parse the command line (the mesh's settings,
//! the service's own, and a subcommand), initialise logging, then `serve` (the default),
//! `migrate`, or run one of the service's own admin [`Task`]s.

use anyhow::Context as _;
use clap::{Args, FromArgMatches, Subcommand};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{
    migrate::connect_and_migrate,
    task::Task,
    template::{Migrator, Template, run_with},
};
use crate::{config::MeshArgs, memory, shutdown, telemetry};

/// What every service binary can be asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Run the HTTP API and the workers until SIGTERM/SIGINT (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
}

/// What the command line asked for.
enum Invocation<T: Template> {
    Builtin(Command),
    Task(T::Command),
}

/// Parses the command line of service `T`; exits with usage on an error, as clap's `parse` does.
fn parse<T: Template>() -> (MeshArgs, T::Args, Invocation<T>) {
    let cli = clap::Command::new(T::NAME).version(T::VERSION);
    let cli = T::Args::augment_args(MeshArgs::augment_args(cli));
    let cli = T::Command::augment_subcommands(Command::augment_subcommands(cli));
    // Last: augmenting with a derived subcommand enum sets the about to that enum's doc comment.
    let cli = cli.about(T::ABOUT).long_about(None);
    let matches = cli.get_matches();
    let parsed = (|| {
        let args = MeshArgs::from_arg_matches(&matches)?;
        let own = T::Args::from_arg_matches(&matches)?;
        let invocation = match matches.subcommand_name() {
            Some(name) if T::Command::has_subcommand(name) => {
                Invocation::Task(T::Command::from_arg_matches(&matches)?)
            }
            Some(_) => Invocation::Builtin(Command::from_arg_matches(&matches)?),
            None => Invocation::Builtin(Command::Serve),
        };
        Ok::<_, clap::Error>((args, own, invocation))
    })();
    parsed.unwrap_or_else(|e| e.exit())
}

/// Every service's `main`: on the mesh's tokio runtime (`memory::runtime`), parses the command
/// line, initialises logging, then either migrates and returns, runs one of the service's own
/// tasks, or binds `MESH_LISTEN` (default `0.0.0.0:<DEFAULT_PORT>`) and calls [`run_with`] with a
/// token that SIGTERM/SIGINT cancel. A signal-initiated shutdown returns `Ok`: exit code 0.
pub fn main<T: Template>() -> anyhow::Result<()> {
    memory::runtime(None)?.block_on(run_cli::<T>())
}

async fn run_cli<T: Template>() -> anyhow::Result<()> {
    let (args, own, invocation) = parse::<T>();
    telemetry::init_service(T::NAME, args.log_format);
    let outcome = match invocation {
        Invocation::Task(task) => task.run(args).await,
        Invocation::Builtin(Command::Migrate) => {
            let db = connect_and_migrate::<Migrator<T>>(T::NAME, &args).await?;
            let _ = db.close().await;
            tracing::info!(service = T::NAME, "migrations applied");
            Ok(())
        }
        Invocation::Builtin(Command::Serve) => {
            let token = CancellationToken::new();
            shutdown::cancel_on_signals(token.clone());
            let addr = args.listen_or(T::DEFAULT_PORT);
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("listen on {addr}"))?;
            run_with::<T>(args, own, listener, token).await
        }
    };
    // The spans of the last requests and events, before the process exits.
    tokio::task::spawn_blocking(telemetry::shutdown).await.ok();
    outcome
}
