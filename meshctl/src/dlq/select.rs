//! The one selection `dlq` commands share: the entries `--stream`, `--group`, `--since`,
//! `--until` and `--error` select, or the entries of explicit ids. `dlq ls` lists it, `dlq replay`
//! and `dlq purge` preview or act on it.

use clap::Args;

use crate::{
    ctx::{Ctx, not_found},
    dead_letters::{self, DeadLetter},
    info,
    position::{Position, id_key, parse_position, require_id},
};

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
/// against the clock now; a preview pins its selection by ids (see `dlq::act`), not by it.
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
    let all = dead_letters::load(ctx).await?;
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

/// The entries of explicit ids, in the order given (each once).
pub async fn by_ids(ctx: &mut Ctx, given: &[String]) -> anyhow::Result<Vec<DeadLetter>> {
    let mut ids: Vec<String> = Vec::with_capacity(given.len());
    for id in given {
        let id = require_id(id)?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let all = dead_letters::load(ctx).await?;
    ids.iter().map(|id| find(&all, id)).collect()
}

/// The entry of one id.
pub async fn by_id(ctx: &mut Ctx, id: &str) -> anyhow::Result<DeadLetter> {
    let id = require_id(id)?;
    find(&dead_letters::load(ctx).await?, &id)
}

fn find(all: &[DeadLetter], id: &str) -> anyhow::Result<DeadLetter> {
    all.iter()
        .find(|d| d.id == id)
        .cloned()
        .ok_or_else(|| not_found(format!("no dead-letter entry {id}")))
}
