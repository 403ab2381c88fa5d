//! `dlq ls|show|replay|purge`: triage of the dead-letter stream. Replay and purge (`dlq_act`)
//! select once per run: a preview prints the exact ids and a command pinned to them, `--yes` acts
//! on exactly the entries it prints; a replay goes through `runtime::dead_letter::replay`, which is
//! atomic and at most once per dead-letter entry.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use common::runtime::{
    dead_letter::{self, Replay, fields},
    redis_io,
};
use redis::Value;
use serde::Serialize;

use crate::{
    ctx::{Ctx, not_found},
    fmt, info,
    position::{Position, id_key, parse_position, require_id},
};

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead-letter entries.
    Ls(Filter),
    /// One dead-letter entry with every field.
    Show { id: String },
    /// Re-add entries to their origin stream for the failed group only (preview; `--yes` to act).
    Replay(Action),
    /// Delete entries from the dead-letter stream (preview; `--yes` to act).
    Purge(Action),
}

/// Which dead-letter entries.
#[derive(Debug, Clone, Args)]
pub struct Filter {
    /// Origin stream.
    #[arg(long)]
    pub stream: Option<String>,
    /// Group that failed.
    #[arg(long)]
    pub group: Option<String>,
    /// Failed at or after (id, time, or age like `2h`).
    #[arg(long)]
    pub since: Option<String>,
    /// Failed at or before (id, time, or age like `10m`).
    #[arg(long)]
    pub until: Option<String>,
    /// Error text contains (case-insensitive).
    #[arg(long)]
    pub error: Option<String>,
}

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

/// A dead-letter entry.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub id: String,
    pub failed_at: Option<String>,
    pub origin_stream: String,
    pub origin_id: String,
    pub group: String,
    pub consumer: String,
    pub delivery_count: u64,
    pub error: String,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    /// Already replayed (a second replay is skipped).
    pub replayed: bool,
    pub fields: BTreeMap<String, String>,
}

/// Every dead-letter entry, oldest first.
pub async fn load(ctx: &mut Ctx) -> anyhow::Result<Vec<DeadLetter>> {
    let key = ctx.keys.dead_letter();
    let replayed: HashSet<String> = redis::cmd("SMEMBERS")
        .arg(ctx.keys.dead_letter_replayed())
        .query_async(&mut ctx.conn)
        .await
        .context("SMEMBERS")?;
    let mut out = Vec::new();
    let mut start = "-".to_owned();
    loop {
        let page: Value = redis::cmd("XRANGE")
            .arg(&key)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(5000)
            .query_async(&mut ctx.conn)
            .await
            .context("XRANGE dead-letter")?;
        let entries = redis_io::parse_entries(&key, page);
        let Some(last) = entries.last() else { break };
        start = format!("({}", last.id);
        for e in entries {
            let fields: BTreeMap<String, String> = e
                .fields
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                .collect();
            let get = |n: &str| fields.get(n).cloned().unwrap_or_default();
            out.push(DeadLetter {
                failed_at: fields
                    .get(fields::FAILED_AT)
                    .cloned()
                    .or(fmt::id_time(&e.id)),
                origin_stream: get(fields::ORIGIN_STREAM),
                origin_id: get(fields::ORIGIN_ID),
                group: get(fields::GROUP),
                consumer: get(fields::CONSUMER),
                delivery_count: get(fields::DELIVERY_COUNT).parse().unwrap_or(0),
                error: get(fields::LAST_ERROR),
                event_id: fields.get("event_id").cloned(),
                event_type: fields.get("type").cloned(),
                replayed: replayed.contains(&e.id),
                id: e.id,
                fields,
            });
        }
    }
    Ok(out)
}

/// Dead letters not replayed yet, per origin stream and group.
#[derive(Debug, Default)]
pub struct Counts(HashMap<(String, String), u64>);

impl Counts {
    pub async fn load(ctx: &mut Ctx) -> anyhow::Result<Self> {
        let mut counts = HashMap::new();
        for d in load(ctx).await?.into_iter().filter(|d| !d.replayed) {
            *counts.entry((d.origin_stream, d.group)).or_default() += 1;
        }
        Ok(Self(counts))
    }

    pub fn of_stream(&self, stream: &str) -> u64 {
        self.0
            .iter()
            .filter(|((s, _), _)| s == stream)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn of_group(&self, stream: &str, group: &str) -> u64 {
        self.0
            .get(&(stream.to_owned(), group.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

/// One end of a `--since`/`--until` window.
#[derive(Debug, Clone, Copy)]
enum Bound {
    /// No bound on this side.
    Open,
    /// Admits ids at or above (`--since`) or at or below (`--until`) this one.
    At((u64, u64)),
    /// Admits nothing: `--since end`, `--until start`.
    Nothing,
}

/// Parses a `--since` (`upper = false`) or `--until` position. A relative one (`2h`) is read
/// against the clock now; a preview pins its selection by ids (see `dlq_act`), not by it.
fn bound(text: Option<&str>, upper: bool) -> anyhow::Result<Bound> {
    let Some(text) = text else {
        return Ok(Bound::Open);
    };
    Ok(match (parse_position(text)?, upper) {
        (Position::Start, false) | (Position::End, true) => Bound::Open,
        (Position::Start, true) | (Position::End, false) => Bound::Nothing,
        (Position::Id(id), _) => Bound::At(id_key(&id)),
        (Position::Time(ms), false) => Bound::At((ms, 0)),
        (Position::Time(ms), true) => Bound::At((ms, u64::MAX)),
    })
}

impl Bound {
    fn admits(self, id: (u64, u64), upper: bool) -> bool {
        match self {
            Bound::Open => true,
            Bound::Nothing => false,
            Bound::At(b) if upper => id <= b,
            Bound::At(b) => id >= b,
        }
    }
}

/// Errors when `--stream` or `--group` names something that neither exists nor appears in the
/// dead-letter stream: a typo must not read as "no dead letters".
async fn check_names(ctx: &mut Ctx, f: &Filter, all: &[DeadLetter]) -> anyhow::Result<()> {
    if let Some(s) = &f.stream
        && !all.iter().any(|d| d.origin_stream == *s)
        && !ctx.is_stream(s).await?
    {
        return Err(not_found(format!(
            "unknown stream `{s}` (--stream): no such stream, and no dead-letter entry comes \
             from it (check --prefix)"
        )));
    }
    if let Some(g) = &f.group {
        let named = all
            .iter()
            .any(|d| d.group == *g && f.stream.as_ref().is_none_or(|s| *s == d.origin_stream));
        if named {
            return Ok(());
        }
        let streams = match &f.stream {
            Some(s) => vec![s.clone()],
            None => info::mesh_streams(ctx).await?,
        };
        for s in &streams {
            if ctx.has_group(s, g).await? {
                return Ok(());
            }
        }
        let scope = match &f.stream {
            Some(s) => format!("stream `{s}` has no such group"),
            None => "no stream has such a group".to_owned(),
        };
        return Err(not_found(format!(
            "unknown group `{g}` (--group): {scope}, and no dead-letter entry names it"
        )));
    }
    Ok(())
}

/// The entries a filter selects, oldest first.
pub async fn select(ctx: &mut Ctx, f: &Filter) -> anyhow::Result<Vec<DeadLetter>> {
    let since = bound(f.since.as_deref(), false)?;
    let until = bound(f.until.as_deref(), true)?;
    let error = f.error.as_ref().map(|e| e.to_lowercase());
    let all = load(ctx).await?;
    check_names(ctx, f, &all).await?;
    Ok(all
        .into_iter()
        .filter(|d| f.stream.as_ref().is_none_or(|s| *s == d.origin_stream))
        .filter(|d| f.group.as_ref().is_none_or(|g| *g == d.group))
        .filter(|d| since.admits(id_key(&d.id), false))
        .filter(|d| until.admits(id_key(&d.id), true))
        .filter(|d| {
            error
                .as_ref()
                .is_none_or(|e| d.error.to_lowercase().contains(e))
        })
        .collect())
}

pub async fn run(ctx: &mut Ctx, cmd: &DlqCommand) -> anyhow::Result<()> {
    match cmd {
        DlqCommand::Ls(f) => {
            let rows = select(ctx, f).await?;
            if ctx.json {
                return fmt::print_json(&rows);
            }
            print_list(&rows, None);
            Ok(())
        }
        DlqCommand::Show { id } => {
            let id = require_id(id)?;
            let d = load(ctx)
                .await?
                .into_iter()
                .find(|d| d.id == id)
                .ok_or_else(|| not_found(format!("no dead-letter entry {id}")))?;
            if ctx.json {
                return fmt::print_json(&d);
            }
            println!("id        {}", d.id);
            println!("failed at {}", fmt::opt(d.failed_at.as_deref()));
            println!("origin    {} {}", d.origin_stream, d.origin_id);
            println!("group     {} (consumer {})", d.group, d.consumer);
            println!("delivered {} times", d.delivery_count);
            println!("error     {}", d.error);
            println!("replayed  {}", if d.replayed { "yes" } else { "no" });
            println!("fields:");
            for (k, v) in &d.fields {
                println!("  {k} = {v}");
            }
            Ok(())
        }
        DlqCommand::Replay(a) => crate::dlq_act::act(ctx, a, crate::dlq_act::Kind::Replay).await,
        DlqCommand::Purge(a) => crate::dlq_act::act(ctx, a, crate::dlq_act::Kind::Purge).await,
    }
}

/// The list table; `actions` adds what an action would do with each entry.
pub fn print_list(rows: &[DeadLetter], actions: Option<&[&str]>) {
    if rows.is_empty() {
        println!("no dead-letter entries match");
        return;
    }
    let mut t = fmt::table([
        "ID", "FAILED", "STREAM", "GROUP", "TRIES", "ERROR", "TYPE", "REPLAYED", "ACTION",
    ]);
    for (i, d) in rows.iter().enumerate() {
        let mut err: String = d.error.chars().take(60).collect();
        if d.error.chars().count() > 60 {
            err.push('…');
        }
        t.add_row([
            d.id.clone(),
            fmt::id_when(Some(&d.id)),
            d.origin_stream.clone(),
            d.group.clone(),
            d.delivery_count.to_string(),
            err,
            fmt::opt(d.event_type.as_deref()),
            if d.replayed { "yes" } else { "no" }.to_owned(),
            actions.and_then(|a| a.get(i)).unwrap_or(&"").to_string(),
        ]);
    }
    println!("{t}");
}

/// Replays one entry (re-exported for `dlq_act`).
pub async fn replay_one(ctx: &mut Ctx, id: &str) -> anyhow::Result<Replay> {
    dead_letter::replay(&mut ctx.conn, &ctx.keys, id)
        .await
        .with_context(|| format!("replay {id}"))
}
