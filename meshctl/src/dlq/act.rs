//! `dlq replay` and `dlq purge`: select once, then preview — the exact ids, and a command pinned to
//! them — or, with `--yes`, act on exactly those entries, reporting each and the totals
//! (`replayed 3, skipped 1`). [`apply`] acts on exactly the ids it is given: `--yes` and the
//! console's confirm form both go through it.

use anyhow::Context as _;
use clap::Args;
use common::runtime::dead_letter::{self, Replay};
use serde::Serialize;

use crate::{
    ctx::Ctx,
    dead_letters::{self, DeadLetter},
    fmt,
    position::id_key,
};

use super::{
    list::print_list,
    select::{self, Filter},
};

#[derive(Debug, Args)]
pub struct Action {
    /// Exactly these dead-letter ids (otherwise: every entry the filters select).
    pub ids: Vec<String>,
    #[command(flatten)]
    pub filter: Filter,
    /// Act on the entries selected in this run (and print each); without it, only preview them
    /// and print the command that acts on exactly those.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Replay,
    Purge,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Replay => "replay",
            Kind::Purge => "purge",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub id: String,
    /// The origin stream of the dead letter (none when it was missing).
    pub stream: Option<String>,
    /// `replayed`, `skipped` (replayed before), `missing`, `purged`.
    pub outcome: &'static str,
    /// Id of the re-added entry on the origin stream.
    pub new_id: Option<String>,
}

/// What [`apply`] did: one outcome per id, and the totals.
#[derive(Debug, Default, Serialize)]
pub struct Applied {
    pub results: Vec<Outcome>,
    pub replayed: u64,
    pub purged: u64,
    pub skipped: u64,
    pub missing: u64,
}

/// Replays or purges exactly `ids`, in order, and nothing else: an id no longer in any
/// dead-letter stream is reported `missing`, one replayed before `skipped`. Ids are unique per
/// origin stream only: an id found in the dead-letter streams of two origins acts on both.
pub async fn apply(ctx: &mut Ctx, kind: Kind, ids: &[String]) -> anyhow::Result<Applied> {
    let all = dead_letters::load(ctx).await?;
    let mut done = Applied::default();
    for id in ids {
        let origins: Vec<String> = all
            .iter()
            .filter(|d| d.id == *id)
            .map(|d| d.origin_stream.clone())
            .collect();
        if origins.is_empty() {
            done.missing += 1;
            done.results.push(Outcome {
                id: id.clone(),
                stream: None,
                outcome: "missing",
                new_id: None,
            });
        }
        for origin in origins {
            let (outcome, new_id) = match kind {
                Kind::Replay => match replay_one(ctx, &origin, id).await? {
                    Replay::Replayed { new_id } => {
                        done.replayed += 1;
                        ("replayed", Some(new_id))
                    }
                    Replay::AlreadyReplayed => {
                        done.skipped += 1;
                        ("skipped", None)
                    }
                    Replay::NotFound => {
                        done.missing += 1;
                        ("missing", None)
                    }
                },
                Kind::Purge => {
                    if purge_one(ctx, &origin, id).await? {
                        done.purged += 1;
                        ("purged", None)
                    } else {
                        done.missing += 1;
                        ("missing", None)
                    }
                }
            };
            done.results.push(Outcome {
                id: id.clone(),
                stream: Some(origin),
                outcome,
                new_id,
            });
        }
    }
    Ok(done)
}

#[derive(Serialize)]
struct Report {
    action: &'static str,
    dry_run: bool,
    selected: Vec<DeadLetter>,
    /// The selected ids: exactly what `--yes` acts on in this run (or what a preview's
    /// `pinned_args` act on later).
    ids: Vec<String>,
    /// The lowest and the highest selected id.
    since: Option<String>,
    until: Option<String>,
    /// Arguments (after the global flags) that select exactly `ids` again and act: the given ids,
    /// or the filters bounded by `--since <lowest> --until <highest>`. Stream ids only grow, so
    /// an entry dead-lettered after this run is above `until` and never joins the selection,
    /// however relative the original `--since` was.
    pinned_args: Vec<String>,
    /// The same as a command line to copy (global flags typed on the command line repeated, a
    /// password masked).
    command: Option<String>,
    results: Vec<Outcome>,
    replayed: u64,
    purged: u64,
    skipped: u64,
    missing: u64,
}

pub async fn act(ctx: &mut Ctx, a: &Action, kind: Kind) -> anyhow::Result<()> {
    let action = kind.name();
    // The one selection of this run: the preview prints it, `--yes` acts on it; nothing is
    // selected again in between.
    let selected = if a.ids.is_empty() {
        select::select(ctx, &a.filter).await?
    } else {
        select::by_ids(ctx, &a.ids).await?
    };
    let ids: Vec<String> = selected.iter().map(|d| d.id.clone()).collect();
    let since = ids.iter().min_by_key(|id| id_key(id)).cloned();
    let until = ids.iter().max_by_key(|id| id_key(id)).cloned();
    let pinned_args = match (&since, &until) {
        (Some(since), Some(until)) => pinned(a, action, &ids, since, until),
        _ => Vec::new(),
    };
    let command = (!pinned_args.is_empty()).then(|| {
        std::iter::once("meshctl".to_owned())
            .chain(
                ctx.repeat_args
                    .iter()
                    .chain(&pinned_args)
                    .map(|w| shell_word(w)),
            )
            .collect::<Vec<_>>()
            .join(" ")
    });
    let mut report = Report {
        action,
        dry_run: !a.yes,
        ids,
        since,
        until,
        pinned_args,
        command,
        selected,
        results: Vec::new(),
        replayed: 0,
        purged: 0,
        skipped: 0,
        missing: 0,
    };
    if !a.yes {
        return preview(ctx, &report, kind);
    }
    let done = apply(ctx, kind, &report.ids).await?;
    report.results = done.results;
    report.replayed = done.replayed;
    report.purged = done.purged;
    report.skipped = done.skipped;
    report.missing = done.missing;
    if ctx.json {
        return fmt::print_json(&report);
    }
    for r in &report.results {
        let group = report
            .selected
            .iter()
            .find(|d| d.id == r.id && Some(&d.origin_stream) == r.stream.as_ref())
            .map_or("?", |d| d.group.as_str());
        match (r.outcome, &r.new_id) {
            ("replayed", Some(new_id)) => println!(
                "replayed {} as {new_id} on {} for group {group}",
                r.id,
                r.stream.as_deref().unwrap_or("?")
            ),
            ("skipped", _) => println!("skipped {}: replayed before", r.id),
            ("missing", _) => println!("missing {}: no longer in the dead-letter stream", r.id),
            (other, _) => println!("{other} {}", r.id),
        }
    }
    let mut line = match kind {
        Kind::Replay => format!("replayed {}, skipped {}", report.replayed, report.skipped),
        Kind::Purge => format!("purged {}", report.purged),
    };
    if report.missing > 0 {
        line.push_str(&format!(", missing {}", report.missing));
    }
    println!("{line}");
    Ok(())
}

/// The arguments that select exactly `ids` again, and act.
fn pinned(a: &Action, action: &str, ids: &[String], since: &str, until: &str) -> Vec<String> {
    let mut args = vec!["dlq".to_owned(), action.to_owned()];
    if a.ids.is_empty() {
        let f = &a.filter;
        for (flag, value) in [
            ("--stream", &f.stream),
            ("--group", &f.group),
            ("--error", &f.error),
        ] {
            if let Some(v) = value {
                args.extend([flag.to_owned(), v.clone()]);
            }
        }
        args.extend([
            "--since".to_owned(),
            since.to_owned(),
            "--until".to_owned(),
            until.to_owned(),
        ]);
    } else {
        args.extend(ids.iter().cloned());
    }
    args.push("--yes".to_owned());
    args
}

/// Replays one entry of `origin`'s dead-letter stream to its failed group (at most once:
/// `Replay` says whether it was skipped).
pub async fn replay_one(ctx: &mut Ctx, origin: &str, id: &str) -> anyhow::Result<Replay> {
    dead_letter::replay(&mut ctx.conn, &ctx.keys, origin, id)
        .await
        .with_context(|| format!("replay {id}"))
}

/// Deletes one entry of `origin`'s dead-letter stream and its replayed mark, atomically (one
/// slot); false when it was gone.
async fn purge_one(ctx: &mut Ctx, origin: &str, id: &str) -> anyhow::Result<bool> {
    let (deleted, _): (u64, u64) = redis::pipe()
        .atomic()
        .cmd("XDEL")
        .arg(ctx.keys.dead_letter(origin))
        .arg(id)
        .cmd("SREM")
        .arg(ctx.keys.dead_letter_replayed(origin))
        .arg(id)
        .query_async(&mut ctx.conn)
        .await
        .context("XDEL dead-letter")?;
    Ok(deleted == 1)
}

/// `word` as one shell word (quoted only when it needs it).
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-.,:/=@%+".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn preview(ctx: &Ctx, report: &Report, kind: Kind) -> anyhow::Result<()> {
    if ctx.json {
        return fmt::print_json(report);
    }
    let actions: Vec<&str> = report
        .selected
        .iter()
        .map(|d| match (kind, d.replayed) {
            (Kind::Replay, false) => "replay",
            (Kind::Replay, true) => "skip (replayed before)",
            (Kind::Purge, _) => "purge",
        })
        .collect();
    print_list(&report.selected, Some(&actions));
    let Some(command) = &report.command else {
        return Ok(());
    };
    let n = report.selected.len();
    println!(
        "\npreview only: {} {n} entr{} selected; nothing was changed.",
        report.action,
        if n == 1 { "y" } else { "ies" }
    );
    println!("ids: {}", report.ids.join(" "));
    println!(
        "to {} exactly these {n}, and none that fail later, run:",
        report.action
    );
    println!("  {command}");
    if command.contains(":****@") {
        println!("(with the password in place of **** in --redis-url)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(super::shell_word("1700000000000-0"), "1700000000000-0");
        assert_eq!(super::shell_word("add up"), "'add up'");
        assert_eq!(super::shell_word("it's"), r"'it'\''s'");
        assert_eq!(super::shell_word(""), "''");
    }
}
