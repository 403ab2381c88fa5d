//! `dlq ls|show|replay|purge|migrate-legacy`: triage of the dead-letter streams (one per origin
//! stream, read as one list; `migrate` moves the single one of older versions into them). `select` is the one selection
//! (filters or explicit ids), `list` prints it (`ls`, `show`), `act` previews or acts on it
//! (`replay`, `purge`): a preview prints the exact ids and a command pinned to them, `--yes` acts
//! on exactly the entries it prints; a replay goes through `runtime::dead_letter::replay`, which is
//! atomic and at most once per dead-letter entry.

pub mod act;
mod list;
mod migrate;
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
    /// Move the entries of the single dead-letter stream of older versions into the dead-letter
    /// stream of their origin stream (preview; `--yes` to act). Run on the single Redis before
    /// moving to a Redis Cluster.
    MigrateLegacy(migrate::Migrate),
}

pub async fn run(ctx: &mut Ctx, cmd: &DlqCommand) -> anyhow::Result<()> {
    match cmd {
        DlqCommand::Ls(f) => list::ls(ctx, f).await,
        DlqCommand::Show { id } => list::show(ctx, id).await,
        DlqCommand::Replay(a) => act::act(ctx, a, act::Kind::Replay).await,
        DlqCommand::Purge(a) => act::act(ctx, a, act::Kind::Purge).await,
        DlqCommand::MigrateLegacy(m) => migrate::migrate_legacy(ctx, m).await,
    }
}
