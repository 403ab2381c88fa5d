//! `show <s> <id>`: one entry, whether it is a valid envelope, and where each group stands with it
//! (pending with whom, delivered, or not delivered yet). [`entry`] is the data (also the
//! console's entry page), [`group_positions`] where each group stands (also `timeline`).

use anyhow::Context as _;
use common::{Envelope, runtime::redis_io};
use redis::Value;
use serde::Serialize;

use crate::{
    ctx::{Ctx, not_found},
    fmt,
    position::require_id,
    tail::EntryView,
};

/// Where one group stands with one entry.
#[derive(Debug, Serialize)]
pub struct GroupView {
    pub group: String,
    /// `pending`, `delivered` (and acknowledged) or `not delivered`.
    pub state: &'static str,
    pub consumer: Option<String>,
    pub deliveries: Option<u64>,
    pub idle_ms: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct ShowView {
    pub stream: String,
    #[serde(flatten)]
    pub entry: EntryView,
    /// Whether the fields form a valid envelope, and why not.
    pub valid_envelope: bool,
    pub poison: Option<String>,
    pub groups: Vec<GroupView>,
}

/// One entry of a stream and where each group stands with it.
pub async fn entry(ctx: &mut Ctx, stream: &str, id: &str) -> anyhow::Result<ShowView> {
    let id = require_id(id)?;
    let key = ctx.require_stream(stream).await?;
    let v: Value = redis::cmd("XRANGE")
        .arg(&key)
        .arg(&id)
        .arg(&id)
        .query_async(&mut ctx.conn)
        .await
        .context("XRANGE")?;
    let raw = redis_io::parse_entries(&key, v)
        .into_iter()
        .next()
        .ok_or_else(|| not_found(format!("no entry {id} on stream `{stream}`")))?;
    let poison = Envelope::from_fields(raw.fields.as_deref().unwrap_or_default())
        .err()
        .map(|e| e.to_string());
    let groups = group_positions(ctx, &key, &id).await?;
    Ok(ShowView {
        stream: stream.to_owned(),
        entry: EntryView::new(raw.id, raw.fields),
        valid_envelope: poison.is_none(),
        poison,
        groups,
    })
}

/// Where each group of the stream at `key` stands with entry `id`.
pub async fn group_positions(ctx: &mut Ctx, key: &str, id: &str) -> anyhow::Result<Vec<GroupView>> {
    let groups_raw: Vec<Value> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(key)
        .query_async(&mut ctx.conn)
        .await
        .context("XINFO GROUPS")?;
    let mut groups = Vec::new();
    for g in groups_raw {
        let m = redis_io::flat_map(g);
        let name = redis_io::value_str(m.get("name")).unwrap_or_default();
        let last = redis_io::value_str(m.get("last-delivered-id")).unwrap_or_default();
        let p: Value = redis::cmd("XPENDING")
            .arg(key)
            .arg(&name)
            .arg(id)
            .arg(id)
            .arg(1)
            .query_async(&mut ctx.conn)
            .await
            .context("XPENDING")?;
        let pending = redis_io::parse_pending_range(p).into_iter().next();
        let delivered = crate::position::id_key(id) <= crate::position::id_key(&last);
        groups.push(GroupView {
            state: match (&pending, delivered) {
                (Some(_), _) => "pending",
                (None, true) => "delivered",
                (None, false) => "not delivered",
            },
            consumer: pending.as_ref().map(|p| p.1.clone()),
            idle_ms: pending.as_ref().map(|p| p.2),
            deliveries: pending.as_ref().map(|p| p.3),
            group: name,
        });
    }
    Ok(groups)
}

pub async fn show(ctx: &mut Ctx, stream: &str, id: &str) -> anyhow::Result<()> {
    let view = entry(ctx, stream, id).await?;
    if ctx.json {
        return fmt::print_json(&view);
    }
    println!(
        "{} {} on {}",
        view.entry.id,
        fmt::id_when(Some(&view.entry.id)),
        stream
    );
    match &view.poison {
        None => println!("valid envelope"),
        Some(why) => println!("NOT a valid envelope (poison): {why}"),
    }
    for (k, v) in &view.entry.fields {
        println!("  {k} = {v}");
    }
    for g in &view.groups {
        let extra = match (&g.consumer, g.deliveries, g.idle_ms) {
            (Some(c), Some(d), Some(i)) => {
                format!(" by {c}, {d} deliveries, idle {}", fmt::duration(i))
            }
            _ => String::new(),
        };
        println!("group {}: {}{extra}", g.group, g.state);
    }
    Ok(())
}
