//! The dead-letter streams (one per origin stream) as meshctl reads them, as one list: every
//! entry with its fields and whether it was replayed, and the counts of those not replayed yet per origin stream and group (`streams`,
//! `groups`, `check` and `top` show them; `dlq` selects from the entries).

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Context as _;
use common::runtime::dead_letter::{self, fields};
use serde::Serialize;

use crate::{ctx::Ctx, fmt, position::id_key};

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

/// Every dead-letter entry of every origin stream's dead-letter stream (on every master of a
/// cluster), as one list, oldest first.
pub async fn load(ctx: &mut Ctx) -> anyhow::Result<Vec<DeadLetter>> {
    let origins = dead_letter::origins(&ctx.target, &mut ctx.conn, &ctx.keys)
        .await
        .context("SCAN for dead-letter streams")?;
    let mut out = Vec::new();
    for origin in origins {
        load_origin(ctx, &origin, &mut out).await?;
    }
    out.sort_by_key(|d| (id_key(&d.id), d.origin_stream.clone()));
    Ok(out)
}

/// The entries of the dead-letter stream of `origin`, added to `out`.
async fn load_origin(ctx: &mut Ctx, origin: &str, out: &mut Vec<DeadLetter>) -> anyhow::Result<()> {
    let key = ctx.keys.dead_letter(origin);
    let replayed: HashSet<String> = redis::cmd("SMEMBERS")
        .arg(ctx.keys.dead_letter_replayed(origin))
        .query_async(&mut ctx.conn)
        .await
        .context("SMEMBERS")?;
    let mut start = "-".to_owned();
    loop {
        let entries = ctx.next_page(&key, &mut start, 5000).await?;
        if entries.is_empty() {
            break;
        }
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
                // The stream it is in says where it came from.
                origin_stream: origin.to_owned(),
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
    Ok(())
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
