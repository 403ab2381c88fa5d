//! `dlq replay` and `dlq purge`: select, preview, and — with `--yes` — act on exactly the entries
//! selected, reporting what was done (`replayed 3, skipped 1`).

use anyhow::Context as _;
use common::runtime::dead_letter::Replay;
use serde::Serialize;

use crate::{
    ctx::{Ctx, not_found},
    dlq::{self, Action, DeadLetter},
    fmt,
    position::require_id,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Replay,
    Purge,
}

#[derive(Serialize)]
struct Outcome {
    id: String,
    /// `replayed`, `skipped` (replayed before), `missing`, `purged`.
    outcome: &'static str,
    /// Id of the re-added entry on the origin stream.
    new_id: Option<String>,
}

#[derive(Serialize)]
struct Report {
    action: &'static str,
    dry_run: bool,
    selected: Vec<DeadLetter>,
    /// Add this `--until` to the same filters to act on exactly this selection later.
    until: Option<String>,
    results: Vec<Outcome>,
    replayed: u64,
    purged: u64,
    skipped: u64,
    missing: u64,
}

pub async fn act(ctx: &mut Ctx, a: &Action, kind: Kind) -> anyhow::Result<()> {
    let selected = if a.ids.is_empty() {
        dlq::select(ctx, &a.filter).await?
    } else {
        let ids: Vec<String> = a
            .ids
            .iter()
            .map(|i| require_id(i))
            .collect::<Result<_, _>>()?;
        let all = dlq::load(ctx).await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let d = all
                .iter()
                .find(|d| d.id == id)
                .ok_or_else(|| not_found(format!("no dead-letter entry {id}")))?;
            out.push(d.clone());
        }
        out
    };
    let action = match kind {
        Kind::Replay => "replay",
        Kind::Purge => "purge",
    };
    let mut report = Report {
        action,
        dry_run: !a.yes,
        until: selected
            .iter()
            .map(|d| d.id.clone())
            .max_by_key(|id| crate::position::id_key(id)),
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
    for d in &report.selected {
        let outcome = match kind {
            Kind::Replay => match dlq::replay_one(ctx, &d.id).await? {
                Replay::Replayed { new_id } => {
                    report.replayed += 1;
                    Outcome {
                        id: d.id.clone(),
                        outcome: "replayed",
                        new_id: Some(new_id),
                    }
                }
                Replay::AlreadyReplayed => {
                    report.skipped += 1;
                    Outcome {
                        id: d.id.clone(),
                        outcome: "skipped",
                        new_id: None,
                    }
                }
                Replay::NotFound => {
                    report.missing += 1;
                    Outcome {
                        id: d.id.clone(),
                        outcome: "missing",
                        new_id: None,
                    }
                }
            },
            Kind::Purge => {
                let (deleted, _): (u64, u64) = redis::pipe()
                    .atomic()
                    .cmd("XDEL")
                    .arg(ctx.keys.dead_letter())
                    .arg(&d.id)
                    .cmd("SREM")
                    .arg(ctx.keys.dead_letter_replayed())
                    .arg(&d.id)
                    .query_async(&mut ctx.conn)
                    .await
                    .context("XDEL dead-letter")?;
                if deleted == 1 {
                    report.purged += 1;
                    Outcome {
                        id: d.id.clone(),
                        outcome: "purged",
                        new_id: None,
                    }
                } else {
                    report.missing += 1;
                    Outcome {
                        id: d.id.clone(),
                        outcome: "missing",
                        new_id: None,
                    }
                }
            }
        };
        report.results.push(outcome);
    }
    if ctx.json {
        return fmt::print_json(&report);
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
    dlq::print_list(&report.selected, Some(&actions));
    if report.selected.is_empty() {
        return Ok(());
    }
    println!(
        "\npreview only: {} {} entr{} selected; nothing was changed.",
        report.action,
        report.selected.len(),
        if report.selected.len() == 1 {
            "y"
        } else {
            "ies"
        }
    );
    if let Some(until) = &report.until {
        println!(
            "to act on exactly these, run the same command with `--yes` (add `--until {until}` \
             if more entries may have failed since), or pass their ids with `--yes`"
        );
    }
    Ok(())
}
