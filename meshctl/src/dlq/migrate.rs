//! `dlq migrate-legacy`: moves the entries of a mesh's one dead-letter stream from before the
//! per-origin ones (`<prefix>dead-letter`, with its `dead-letter:replayed` set) into the
//! dead-letter stream of each entry's origin stream, keeping its id (unless the new stream
//! already has later entries) and whether it was replayed. A preview
//! without `--yes`. Each entry moves in one script (added to its new stream under a new id, its
//! replayed mark carried over, deleted from the old stream), so a crash leaves no copy behind and
//! a second run goes on where the first stopped. Run on the single server, before the keys move
//! to a cluster (docs/redis-cluster.md): on a cluster the old and the new keys are in different
//! slots.

use std::collections::BTreeMap;

use anyhow::Context as _;
use clap::Args;
use common::runtime::dead_letter::fields;
use serde::Serialize;

use crate::{
    ctx::{Ctx, bad_input},
    fmt,
};

#[derive(Debug, Args)]
pub struct Migrate {
    /// Move the entries; without it, only count what would move.
    #[arg(long)]
    pub yes: bool,
}

/// What a run found and did.
#[derive(Debug, Default, Serialize)]
struct Report {
    dry_run: bool,
    /// Entries per origin stream (moved, or to move).
    origins: BTreeMap<String, u64>,
    /// Entries without an origin stream field: left in the old stream.
    without_origin: u64,
    moved: u64,
}

pub async fn migrate_legacy(ctx: &mut Ctx, m: &Migrate) -> anyhow::Result<()> {
    if ctx.conn.is_cluster() {
        return Err(bad_input(
            "migrate-legacy runs on the single Redis before its keys move to the cluster \
             (the old and the new dead-letter streams are in different slots of a cluster)",
        ));
    }
    let legacy = ctx.keys.legacy_dead_letter();
    let mut report = Report {
        dry_run: !m.yes,
        ..Report::default()
    };
    let mut start = "-".to_owned();
    loop {
        let entries = ctx.next_page(&legacy, &mut start, 1000).await?;
        if entries.is_empty() {
            break;
        }
        for entry in entries {
            let fields = entry.fields.unwrap_or_default();
            let origin = common::envelope::field(&fields, fields::ORIGIN_STREAM)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .filter(|o| common::keys::check_name(o).is_ok() && !o.is_empty());
            let Some(origin) = origin else {
                report.without_origin += 1;
                continue;
            };
            *report.origins.entry(origin.clone()).or_default() += 1;
            if m.yes && move_entry(ctx, &origin, &entry.id).await? {
                report.moved += 1;
            }
        }
    }
    if ctx.json {
        return fmt::print_json(&report);
    }
    for (origin, n) in &report.origins {
        let verb = if m.yes { "moved" } else { "would move" };
        println!("{verb} {n} to {}", ctx.keys.dead_letter(origin));
    }
    if report.without_origin > 0 {
        println!(
            "left {} without an origin stream in {legacy}",
            report.without_origin
        );
    }
    if !m.yes && !report.origins.is_empty() {
        println!("run again with --yes to move them");
    }
    Ok(())
}

/// Moves one entry of `KEYS[1]` (id `ARGV[1]`) to `KEYS[3]`, under the same id when the new
/// stream has none later (else a new one), and its mark in `KEYS[2]` (replayed) to `KEYS[4]`;
/// returns the id, or false when it was gone. One script: on one server, atomic.
const MOVE: &str = r"
local entry = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #entry == 0 then return false end
local id = redis.pcall('XADD', KEYS[3], ARGV[1], unpack(entry[1][2]))
if type(id) == 'table' and id.err then
  id = redis.call('XADD', KEYS[3], '*', unpack(entry[1][2]))
end
if redis.call('SREM', KEYS[2], ARGV[1]) == 1 then redis.call('SADD', KEYS[4], id) end
redis.call('XDEL', KEYS[1], ARGV[1])
return id
";

/// Moves one entry (see [`MOVE`]); false when it was gone meanwhile.
async fn move_entry(ctx: &mut Ctx, origin: &str, id: &str) -> anyhow::Result<bool> {
    let moved: Option<String> = redis::Script::new(MOVE)
        .key(ctx.keys.legacy_dead_letter())
        .key(ctx.keys.legacy_dead_letter_replayed())
        .key(ctx.keys.dead_letter(origin))
        .key(ctx.keys.dead_letter_replayed(origin))
        .arg(id)
        .invoke_async(&mut ctx.conn)
        .await
        .with_context(|| format!("move dead-letter entry {id}"))?;
    Ok(moved.is_some())
}
