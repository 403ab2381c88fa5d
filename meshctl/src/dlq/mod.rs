//! `dlq ls|show|replay|purge`: triage of the dead-letter stream. `select` is the one selection
//! (filters or explicit ids), `list` prints it (`ls`, `show`), `act` previews or acts on it
//! (`replay`, `purge`): a preview prints the exact ids and a command pinned to them, `--yes` acts
//! on exactly the entries it prints; a replay goes through `runtime::dead_letter::replay`, which is
//! atomic and at most once per dead-letter entry.

pub mod act;
mod list;
pub mod select;

use clap::Subcommand;

use crate::ctx::Ctx;

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead-letter entries.
    Ls(select::Filter),
    /// One dead-letter entry with every field.
    Show { id: String },
    /// Re-add entries to their origin stream for the failed group only (preview; `--yes` to act).
    Replay(act::Action),
    /// Delete entries from the dead-letter stream (preview; `--yes` to act).
    Purge(act::Action),
}

pub async fn run(ctx: &mut Ctx, cmd: &DlqCommand) -> anyhow::Result<()> {
    match cmd {
        DlqCommand::Ls(f) => list::ls(ctx, f).await,
        DlqCommand::Show { id } => list::show(ctx, id).await,
        DlqCommand::Replay(a) => act::act(ctx, a, act::Kind::Replay).await,
        DlqCommand::Purge(a) => act::act(ctx, a, act::Kind::Purge).await,
    }
}
