//! `timeline <correlation-id>`: one order (or any chain of events) across the mesh — every entry
//! of every stream whose envelope carries that `correlation_id`, in the order they were added,
//! with where each group stands with it, and the dead letters that carry it. [`timeline`] is the
//! data (also the console's timeline page), [`print`] the CLI's table.
//!
//! There is no index by correlation id in Redis: each stream is read whole (`XRANGE` in pages),
//! which is what safe trim keeps (the stream retention, 6 h by default). An operator's tool on
//! demand, not something to poll.

use common::{envelope, http::MAX_REQUEST_ID_LEN, runtime::redis_io};
use serde::Serialize;

use crate::{
    ctx::{Ctx, bad_input},
    dead_letters::{self, DeadLetter},
    fmt, info,
    position::id_key,
    show::{self, GroupView},
    tail::EntryView,
};

/// Most entries one timeline lists; past it the answer says it was cut.
pub const MAX_ENTRIES: usize = 1000;
/// Entries read from Redis per `XRANGE`.
const PAGE: usize = 1000;

/// One entry of the timeline.
#[derive(Debug, Serialize)]
pub struct Step {
    pub stream: String,
    #[serde(flatten)]
    pub entry: EntryView,
    pub producer: Option<String>,
    pub causation_id: Option<String>,
    /// Where each group of the stream stands with it.
    pub groups: Vec<GroupView>,
}

#[derive(Debug, Serialize)]
pub struct Timeline {
    pub correlation_id: String,
    /// Oldest first (by the time each entry was added to its stream).
    pub steps: Vec<Step>,
    /// Dead letters carrying the correlation id, oldest first.
    pub dead_letters: Vec<DeadLetter>,
    /// More than [`MAX_ENTRIES`] entries matched; the oldest are listed.
    pub truncated: bool,
}

/// Checks a correlation id as the operator typed it: 1 to 128 characters, like the request ids
/// it comes from (`common::http::MAX_REQUEST_ID_LEN`).
pub fn require_correlation_id(text: &str) -> anyhow::Result<String> {
    let text = text.trim();
    if text.is_empty() || text.len() > MAX_REQUEST_ID_LEN {
        return Err(bad_input(format!(
            "a correlation id has 1 to {MAX_REQUEST_ID_LEN} characters"
        )));
    }
    Ok(text.to_owned())
}

/// Every entry of every mesh stream carrying `correlation_id`, and the dead letters carrying it.
pub async fn timeline(ctx: &mut Ctx, correlation_id: &str) -> anyhow::Result<Timeline> {
    let correlation_id = require_correlation_id(correlation_id)?;
    let wanted = correlation_id.as_bytes();
    let mut found: Vec<(String, redis_io::RawEntry)> = Vec::new();
    for stream in info::mesh_streams(ctx).await? {
        let key = ctx.keys.stream(&stream);
        let mut start = "-".to_owned();
        loop {
            let entries = ctx.next_page(&key, &mut start, PAGE).await?;
            if entries.is_empty() {
                break;
            }
            let full = entries.len() == PAGE;
            found.extend(
                entries
                    .into_iter()
                    .filter(|e| {
                        e.fields
                            .as_deref()
                            .and_then(|f| envelope::field(f, "correlation_id"))
                            == Some(wanted)
                    })
                    .map(|e| (stream.clone(), e)),
            );
            if !full {
                break;
            }
        }
    }
    found.sort_by_key(|(_, e)| id_key(&e.id));
    let truncated = found.len() > MAX_ENTRIES;
    found.truncate(MAX_ENTRIES);
    let mut steps = Vec::with_capacity(found.len());
    for (stream, raw) in found {
        let key = ctx.keys.stream(&stream);
        let groups = show::group_positions(ctx, &key, &raw.id).await?;
        let entry = EntryView::new(raw.id, raw.fields);
        steps.push(Step {
            producer: entry.fields.get("producer").cloned(),
            causation_id: entry.fields.get("causation_id").cloned(),
            stream,
            entry,
            groups,
        });
    }
    let dead_letters = dead_letters::load(ctx)
        .await?
        .into_iter()
        .filter(|d| d.fields.get("correlation_id").map(String::as_str) == Some(&correlation_id))
        .collect();
    Ok(Timeline {
        correlation_id,
        steps,
        dead_letters,
        truncated,
    })
}

/// `meshctl timeline <correlation-id>`.
pub async fn print(ctx: &mut Ctx, correlation_id: &str) -> anyhow::Result<()> {
    let t = timeline(ctx, correlation_id).await?;
    if ctx.json {
        return fmt::print_json(&t);
    }
    if t.steps.is_empty() && t.dead_letters.is_empty() {
        println!("no entry carries correlation id {}", t.correlation_id);
        return Ok(());
    }
    let mut table = fmt::table(["ADDED", "STREAM", "ID", "TYPE", "PRODUCER", "GROUPS"]);
    for s in &t.steps {
        let groups: Vec<String> = s
            .groups
            .iter()
            .map(|g| format!("{}: {}", g.group, g.state))
            .collect();
        let replay = s
            .entry
            .fields
            .get(envelope::REPLAY_FOR_GROUP_FIELD)
            .map(|g| format!(" (replay for {g})"))
            .unwrap_or_default();
        table.add_row([
            fmt::opt(s.entry.time.as_deref()),
            s.stream.clone(),
            s.entry.id.clone(),
            format!("{}{replay}", fmt::opt(s.entry.event_type.as_deref())),
            fmt::opt(s.producer.as_deref()),
            groups.join(", "),
        ]);
    }
    println!("{table}");
    if t.truncated {
        println!("(only the oldest {MAX_ENTRIES} entries are listed)");
    }
    for d in &t.dead_letters {
        println!(
            "dead letter {}: {} {} failed in group {}: {}{}",
            d.id,
            d.origin_stream,
            d.origin_id,
            d.group,
            d.error,
            if d.replayed { " (replayed)" } else { "" }
        );
    }
    Ok(())
}
