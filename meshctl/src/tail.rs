//! `tail <s>`: from an id, a time, start or end; `--follow`; filters on the event type and on
//! payload fields. [`EntryView`] is how an entry prints (also for `show`).

use std::{collections::BTreeMap, io::Write as _};

use anyhow::Context as _;
use clap::Args;
use common::runtime::redis_io;
use redis::Value;
use serde::Serialize;

use crate::{
    ctx::{Ctx, bad_input, usage},
    fmt,
    position::{MAX_SEQ, Position, parse_position},
};

#[derive(Debug, Args)]
pub struct TailArgs {
    pub stream: String,
    /// Where to start: an id, a time (RFC 3339 or an age like `10m`), `start` or `end`.
    /// Without it: the last `-n` entries.
    #[arg(long)]
    pub from: Option<String>,
    /// Keep waiting for new entries, printing each once, until interrupted.
    #[arg(long, short)]
    pub follow: bool,
    /// How many entries of history: without `--from` the last n (default 10), with `--from` at
    /// most n from there (default: all). With `--follow` it bounds only the history, never what
    /// follows; it cannot be combined with both `--from` and `--follow` (that would skip entries).
    #[arg(long, short = 'n')]
    pub count: Option<usize>,
    /// Only this event type.
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// Only entries whose field matches: `data.order_id=…` (payload path) or `producer=store`.
    #[arg(long = "where", value_name = "FIELD=VALUE")]
    pub filters: Vec<String>,
}

/// One entry, as printed (a JSON line with `--json`).
#[derive(Debug, Serialize)]
pub struct EntryView {
    pub id: String,
    pub time: Option<String>,
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    pub event_id: Option<String>,
    /// Every field as text.
    pub fields: BTreeMap<String, String>,
    /// The `data` field parsed, when it is JSON.
    pub data: Option<serde_json::Value>,
}

impl EntryView {
    pub fn new(id: String, raw: Option<common::envelope::Fields>) -> Self {
        let fields: BTreeMap<String, String> = raw
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        Self {
            time: fmt::id_time(&id),
            event_type: fields.get("type").cloned(),
            event_id: fields.get("event_id").cloned(),
            data: fields
                .get("data")
                .and_then(|d| serde_json::from_str(d).ok()),
            fields,
            id,
        }
    }

    /// The value at `path` as text: `data.a.b` in the payload, or a top-level field.
    fn lookup(&self, path: &str) -> Option<String> {
        match path.strip_prefix("data.") {
            Some(rest) => {
                let mut v = self.data.as_ref()?;
                for part in rest.split('.') {
                    v = match v {
                        serde_json::Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
                        other => other.get(part)?,
                    };
                }
                Some(match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
            }
            None => self.fields.get(path).cloned(),
        }
    }

    fn line(&self) -> String {
        let data = self
            .fields
            .get("data")
            .map(String::as_str)
            .unwrap_or("(no data)");
        let replay = self
            .fields
            .get(common::envelope::REPLAY_FOR_GROUP_FIELD)
            .map(|g| format!(" [replay for {g}]"))
            .unwrap_or_default();
        format!(
            "{}  {}  {}{}  {}",
            self.id,
            fmt::opt(self.time.as_deref()),
            fmt::opt(self.event_type.as_deref()),
            replay,
            data
        )
    }
}

struct Filters {
    event_type: Option<String>,
    fields: Vec<(String, String)>,
}

impl Filters {
    fn parse(args: &TailArgs) -> anyhow::Result<Self> {
        let fields = args
            .filters
            .iter()
            .map(|f| {
                f.split_once('=')
                    .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
                    .ok_or_else(|| bad_input(format!("--where `{f}`: expected FIELD=VALUE")))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            event_type: args.event_type.clone(),
            fields,
        })
    }

    fn matches(&self, e: &EntryView) -> bool {
        self.event_type
            .as_ref()
            .is_none_or(|t| e.event_type.as_ref() == Some(t))
            && self
                .fields
                .iter()
                .all(|(path, want)| e.lookup(path).as_ref() == Some(want))
    }
}

async fn range(
    ctx: &mut Ctx,
    cmd: &str,
    key: &str,
    a: &str,
    b: &str,
) -> anyhow::Result<Vec<EntryView>> {
    let v: Value = redis::cmd(cmd)
        .arg(key)
        .arg(a)
        .arg(b)
        .arg("COUNT")
        .arg(500)
        .query_async(&mut ctx.conn)
        .await
        .with_context(|| format!("{cmd} {key}"))?;
    Ok(redis_io::parse_entries(key, v)
        .into_iter()
        .map(|e| EntryView::new(e.id, e.fields))
        .collect())
}

/// Prints one entry, a line each (flushed: stdout is line-buffered, so a pipe sees it at once).
fn emit(ctx: &Ctx, e: &EntryView) -> anyhow::Result<()> {
    let line = if ctx.json {
        serde_json::to_string(e)?
    } else {
        e.line()
    };
    writeln!(std::io::stdout(), "{line}").context("write to stdout")
}

/// The newest id of a stream, `0-0` when it is empty.
async fn newest_id(ctx: &mut Ctx, key: &str) -> anyhow::Result<String> {
    let v: Value = redis::cmd("XREVRANGE")
        .arg(key)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut ctx.conn)
        .await
        .context("XREVRANGE")?;
    Ok(redis_io::parse_entries(key, v)
        .into_iter()
        .next()
        .map_or_else(|| "0-0".to_owned(), |e| e.id))
}

/// The id just before `id` (XREAD reads strictly after its id).
fn id_before(id: &str) -> String {
    match redis_io::parse_id(id) {
        Some((ms, seq)) if seq > 0 => format!("{ms}-{}", seq - 1),
        Some((ms, _)) if ms > 0 => format!("{}-{}", ms - 1, MAX_SEQ),
        _ => "0-0".to_owned(),
    }
}

pub async fn tail(ctx: &mut Ctx, args: &TailArgs) -> anyhow::Result<()> {
    let key = ctx.require_stream(&args.stream).await?;
    let filters = Filters::parse(args)?;
    let from = args.from.as_deref().map(parse_position).transpose()?;
    if args.follow && from.is_some() && args.count.is_some() {
        return Err(usage(
            "`-n` with both `--from` and `--follow` would skip the entries between the n-th and \
             the end of the stream: drop `-n` to print everything from `--from` on, or `--from` \
             to print the last n entries, then follow",
        ));
    }
    // `cursor` is the newest id the history part has read, printed or filtered out: following
    // from it prints nothing twice (everything up to it was handled) and misses nothing (it
    // never passes an entry not read yet, however many were added while the history printed).
    let cursor = match from {
        None => last_entries(ctx, &key, &filters, args.count.unwrap_or(10)).await?,
        Some(Position::End) => newest_id(ctx, &key).await?,
        Some(pos) => {
            let limit = args.count.unwrap_or(usize::MAX);
            entries_from(ctx, &key, &filters, pos, limit).await?
        }
    };
    if args.follow {
        follow(ctx, &key, &filters, cursor).await?;
    }
    Ok(())
}

/// Prints the last `limit` matching entries, oldest first; returns the newest id read.
async fn last_entries(
    ctx: &mut Ctx,
    key: &str,
    filters: &Filters,
    limit: usize,
) -> anyhow::Result<String> {
    let mut found = Vec::new();
    let mut newest = None;
    let mut end = "+".to_owned();
    while found.len() < limit {
        let page = range(ctx, "XREVRANGE", key, &end, "-").await?;
        let Some(oldest) = page.last() else { break };
        end = format!("({}", oldest.id);
        newest.get_or_insert_with(|| page[0].id.clone());
        found.extend(page.into_iter().filter(|e| filters.matches(e)));
    }
    found.truncate(limit);
    for e in found.iter().rev() {
        emit(ctx, e)?;
    }
    Ok(newest.unwrap_or_else(|| "0-0".to_owned()))
}

/// Prints up to `limit` matching entries from `pos` on; returns the newest id read, or the id
/// just before `pos` when there was none (so that following starts at `pos`, even in the future).
async fn entries_from(
    ctx: &mut Ctx,
    key: &str,
    filters: &Filters,
    pos: Position,
    limit: usize,
) -> anyhow::Result<String> {
    let mut start = match pos {
        Position::Id(id) => id,
        Position::Time(ms) => format!("{ms}-0"),
        Position::Start | Position::End => "0-0".to_owned(),
    };
    let mut cursor = id_before(&start);
    let mut printed = 0usize;
    while printed < limit {
        let page = range(ctx, "XRANGE", key, &start, "+").await?;
        let Some(newest) = page.last() else { break };
        start = format!("({}", newest.id);
        for e in &page {
            if printed >= limit {
                break;
            }
            if filters.matches(e) {
                emit(ctx, e)?;
                printed += 1;
            }
            cursor = e.id.clone();
        }
    }
    Ok(cursor)
}

/// Prints every matching entry added after `cursor`, until interrupted.
async fn follow(
    ctx: &mut Ctx,
    key: &str,
    filters: &Filters,
    mut cursor: String,
) -> anyhow::Result<()> {
    loop {
        let v: Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(500)
            .arg("BLOCK")
            .arg(1000)
            .arg("STREAMS")
            .arg(key)
            .arg(&cursor)
            .query_async(&mut ctx.conn)
            .await
            .context("XREAD")?;
        for raw in redis_io::parse_read_reply(v) {
            let e = EntryView::new(raw.id, raw.fields);
            if filters.matches(&e) {
                emit(ctx, &e)?;
            }
            cursor = e.id;
        }
    }
}
