//! What a service adds to the command line besides the mesh's settings and `serve`/`migrate`:
//! its admin [`Task`]s ([`NoCommand`] for none) and its own settings ([`NoArgs`] for none).

use std::future::Future;

use clap::{ArgMatches, FromArgMatches, Subcommand};

use crate::config::MeshArgs;

/// A service's own admin subcommands (`user create-admin`), beside `serve` and `migrate`.
pub trait Task: Subcommand + Send + 'static {
    /// Runs the task with the mesh's settings, after logging is initialised.
    fn run(self, args: MeshArgs) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// No subcommands besides `serve` and `migrate`.
#[derive(Debug, Clone, Copy)]
pub enum NoCommand {}

impl FromArgMatches for NoCommand {
    fn from_arg_matches(_: &ArgMatches) -> Result<Self, clap::Error> {
        Err(clap::Error::new(clap::error::ErrorKind::InvalidSubcommand))
    }

    fn update_from_arg_matches(&mut self, _: &ArgMatches) -> Result<(), clap::Error> {
        match *self {}
    }
}

impl Subcommand for NoCommand {
    fn augment_subcommands(cmd: clap::Command) -> clap::Command {
        cmd
    }

    fn augment_subcommands_for_update(cmd: clap::Command) -> clap::Command {
        cmd
    }

    fn has_subcommand(_: &str) -> bool {
        false
    }
}

impl Task for NoCommand {
    async fn run(self, _: MeshArgs) -> anyhow::Result<()> {
        match self {}
    }
}

/// No settings of the service's own.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NoArgs {}
