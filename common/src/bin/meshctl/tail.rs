//! `tail <s>`: from an id, a time, start or end; `--follow`; filters on the event type and on
//! payload fields. [`EntryView`] is how an entry prints (also for `show`).

use std::collections::BTreeMap;

use anyhow::Context as _;
use clap::Args;
use common::runtime::redis_io;
use redis::Value;
use serde::Serialize;

use crate::{
    ctx::{Ctx, bad_input},
    fmt,
    position::{Position, parse_position},
};

#[derive(Debug, Args)]
pub struct TailArgs {
    pub stream: String,
    /// Where to start: an id, a time (RFC 3339 or an age like `10m`), `start` or `end`.
    /// Without it: the last `--count` entries.
    #[arg(long)]
    pub from: Option<String>,
    /// Keep waiting for new entries.
    #[arg(long, short)]
    pub follow: bool,
    /// Stop after this many entries (default 10 without `--from`, unlimited with it).
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

    fn print_line(&self) {
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
        println!(
            "{}  {}  {}{}  {}",
            self.id,
            fmt::opt(self.time.as_deref()),
            fmt::opt(self.event_type.as_deref()),
            replay,
            data
        );
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

fn emit(ctx: &Ctx, e: &EntryView) -> anyhow::Result<()> {
    if ctx.json {
        fmt::print_json_line(e)
    } else {
        e.print_line();
        Ok(())
    }
}

pub async fn tail(ctx: &mut Ctx, args: &TailArgs) -> anyhow::Result<()> {
    let key = ctx.require_stream(&args.stream).await?;
    let filters = Filters::parse(args)?;
    let from = args.from.as_deref().map(parse_position).transpose()?;
    let limit = args
        .count
        .unwrap_or(if from.is_none() { 10 } else { usize::MAX });
    let mut printed = 0usize;
    // The id after which `--follow` continues.
    let mut last_seen = match range(ctx, "XREVRANGE", &key, "+", "-").await?.first() {
        Some(e) => e.id.clone(),
        None => "0-0".into(),
    };
    match from {
        None => {
            // The last `limit` matching entries, oldest first.
            let mut found = Vec::new();
            let mut end = "+".to_owned();
            while found.len() < limit {
                let page = range(ctx, "XREVRANGE", &key, &end, "-").await?;
                let Some(oldest) = page.last() else { break };
                end = format!("({}", oldest.id);
                found.extend(page.into_iter().filter(|e| filters.matches(e)));
            }
            found.truncate(limit);
            for e in found.iter().rev() {
                emit(ctx, e)?;
            }
            printed = found.len();
        }
        Some(Position::End) => {}
        Some(pos) => {
            let mut start = match pos {
                Position::Id(id) => id,
                Position::Time(ms) => format!("{ms}-0"),
                _ => "-".to_owned(),
            };
            'pages: loop {
                let page = range(ctx, "XRANGE", &key, &start, "+").await?;
                let Some(newest) = page.last() else { break };
                start = format!("({}", newest.id);
                for e in page.iter().filter(|e| filters.matches(e)) {
                    if printed >= limit {
                        break 'pages;
                    }
                    emit(ctx, e)?;
                    printed += 1;
                    last_seen = e.id.clone();
                }
            }
        }
    }
    if !args.follow {
        return Ok(());
    }
    while printed < limit {
        let v: Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(500)
            .arg("BLOCK")
            .arg(1000)
            .arg("STREAMS")
            .arg(&key)
            .arg(&last_seen)
            .query_async(&mut ctx.conn)
            .await
            .context("XREAD")?;
        for raw in redis_io::parse_read_reply(v) {
            let e = EntryView::new(raw.id, raw.fields);
            last_seen = e.id.clone();
            if printed < limit && filters.matches(&e) {
                emit(ctx, &e)?;
                printed += 1;
            }
        }
    }
    Ok(())
}
