//! State shared by several commands, read from Redis: which streams the mesh has, what
//! `XINFO STREAM`/`GROUPS`/`CONSUMERS` and `XPENDING` say about them, and the dead-letter counts.

use std::collections::{BTreeSet, HashMap};

use anyhow::Context as _;
use common::connection::Conn;
use common::{
    connection::scan_keys,
    events::ALL_STREAMS,
    keys::{DEAD_LETTER_STREAM, glob_escape},
    runtime::{
        inspect::{self, LagSource},
        redis_io,
    },
};
use redis::Value;
use serde::Serialize;

use crate::{ctx::Ctx, dead_letters, fmt};

/// One stream.
#[derive(Debug, Clone, Serialize)]
pub struct StreamInfo {
    pub stream: String,
    pub key: String,
    pub exists: bool,
    pub length: u64,
    pub first_id: Option<String>,
    pub first_at: Option<String>,
    pub last_id: Option<String>,
    pub last_at: Option<String>,
    /// Milliseconds since the last entry was added.
    pub last_age_ms: Option<u64>,
    pub last_generated_id: Option<String>,
    /// Entries ever added (Redis ≥ 7).
    pub entries_added: Option<u64>,
    /// Highest id deleted or trimmed so far (`0-0`: none).
    pub max_deleted_entry_id: Option<String>,
    pub groups: usize,
    /// Dead-letter entries from this stream not replayed yet.
    pub dead_letters: u64,
}

/// One consumer group on one stream.
#[derive(Debug, Clone, Serialize)]
pub struct GroupInfo {
    pub stream: String,
    pub group: String,
    pub consumers: i64,
    pub pending: i64,
    pub last_delivered_id: String,
    pub last_delivered_at: Option<String>,
    /// Entries the group has read (`None` when Redis does not know).
    pub entries_read: Option<i64>,
    /// Entries not yet delivered to the group.
    pub lag: u64,
    /// `redis` (from `XINFO GROUPS`) or `counted` (Redis reported it unknown; meshctl counted).
    pub lag_source: &'static str,
    /// Why Redis could not tell the lag, when it could not.
    pub lag_note: Option<String>,
    /// Entries were deleted or trimmed before this group read them.
    pub behind_first_entry: bool,
    pub warning: Option<String>,
    pub oldest_pending_id: Option<String>,
    /// Milliseconds since the oldest pending entry was added to the stream.
    pub oldest_pending_age_ms: Option<u64>,
    /// Dead-letter entries of this stream and group not replayed yet.
    pub dead_letters: u64,
}

/// Every stream of the mesh: the catalog's, then any other stream under the prefix (tests and
/// tools add their own), never the dead-letter stream itself.
pub async fn mesh_streams(ctx: &mut Ctx) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = ALL_STREAMS.iter().map(|s| (*s).to_owned()).collect();
    let pattern = format!("{}*", glob_escape(ctx.keys.prefix()));
    let keys = scan_keys(&ctx.target, &mut ctx.conn, &pattern, "stream")
        .await
        .context("SCAN")?;
    let mut found = BTreeSet::new();
    for key in keys {
        if let Some(name) = ctx.keys.stream_name(&key)
            && ctx.keys.dead_letter_origin(&key).is_none()
            && name != DEAD_LETTER_STREAM
            && !ALL_STREAMS.contains(&name)
        {
            found.insert(name.to_owned());
        }
    }
    names.extend(found);
    Ok(names)
}

/// `XINFO STREAM` as a map; `None` when the key does not exist.
async fn xinfo_stream(
    conn: &mut Conn,
    key: &str,
) -> anyhow::Result<Option<HashMap<String, Value>>> {
    let exists: bool = redis::cmd("EXISTS").arg(key).query_async(conn).await?;
    if !exists {
        return Ok(None);
    }
    let v: Value = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(key)
        .query_async(conn)
        .await
        .with_context(|| format!("XINFO STREAM {key}"))?;
    Ok(Some(redis_io::flat_map(v)))
}

fn entry_id(key: &str, v: Option<&Value>) -> Option<String> {
    let v = v?.clone();
    redis_io::parse_entries(key, Value::Array(vec![v]))
        .into_iter()
        .next()
        .map(|e| e.id)
}

/// One stream's summary (`dead_letters` from `dead`).
pub async fn stream_info(
    ctx: &mut Ctx,
    stream: &str,
    dead: &dead_letters::Counts,
) -> anyhow::Result<StreamInfo> {
    let key = ctx.keys.stream(stream);
    let info = xinfo_stream(&mut ctx.conn, &key).await?;
    let map = info.clone().unwrap_or_default();
    let first_id = entry_id(&key, map.get("first-entry"));
    let last_id = entry_id(&key, map.get("last-entry"));
    let uint = |name: &str| redis_io::value_int(map.get(name)).map(|v| v.max(0) as u64);
    Ok(StreamInfo {
        stream: stream.to_owned(),
        exists: info.is_some(),
        length: uint("length").unwrap_or(0),
        first_at: first_id.as_deref().and_then(fmt::id_time),
        last_at: last_id.as_deref().and_then(fmt::id_time),
        last_age_ms: last_id.as_deref().and_then(fmt::id_age_ms),
        first_id,
        last_id,
        last_generated_id: redis_io::value_str(map.get("last-generated-id")),
        entries_added: uint("entries-added"),
        max_deleted_entry_id: redis_io::value_str(map.get("max-deleted-entry-id")),
        groups: uint("groups").unwrap_or(0) as usize,
        dead_letters: dead.of_stream(stream),
        key,
    })
}

/// Every group of a stream.
pub async fn groups_of(
    ctx: &mut Ctx,
    stream: &StreamInfo,
    dead: &dead_letters::Counts,
) -> anyhow::Result<Vec<GroupInfo>> {
    if !stream.exists {
        return Ok(Vec::new());
    }
    let key = &stream.key;
    let states = inspect::group_states(&mut ctx.conn, key)
        .await
        .context("XINFO GROUPS")?;
    let mut out = Vec::with_capacity(states.len());
    for (group, state) in states {
        let last = state.last_delivered_id.clone();
        let pending = state.pending;
        let (lag, source) = inspect::group_lag(&mut ctx.conn, key, &state)
            .await
            .context("count lag")?;
        let (lag_source, lag_note) = match source {
            LagSource::Redis => ("redis", None),
            LagSource::Counted => (
                "counted",
                Some(
                    "Redis reports the lag as unknown: entries after the group's position were \
                     deleted, or the group was created or moved (SETID) without an entries-read \
                     count; meshctl counted the entries after last-delivered-id instead"
                        .to_owned(),
                ),
            ),
        };
        let entries_read = state.entries_read;
        let missed = missed_entries(&mut ctx.conn, stream, &last, entries_read).await?;
        let behind = missed > 0;
        let warning = behind.then(|| {
            format!(
                "group is behind the first entry: {missed} entries were deleted or trimmed \
                 before it read them"
            )
        });
        let oldest_pending_id = if pending > 0 {
            inspect::oldest_pending(&mut ctx.conn, key, &group)
                .await
                .context("XPENDING")?
        } else {
            None
        };
        out.push(GroupInfo {
            stream: stream.stream.clone(),
            consumers: state.consumers,
            pending,
            last_delivered_at: fmt::id_time(&last),
            last_delivered_id: last,
            entries_read,
            lag,
            lag_source,
            lag_note,
            behind_first_entry: behind,
            warning,
            oldest_pending_age_ms: oldest_pending_id.as_deref().and_then(fmt::id_age_ms),
            oldest_pending_id,
            dead_letters: dead.of_group(&stream.stream, &group),
            group,
        });
    }
    Ok(out)
}

/// How many entries were deleted before a group at `last` read them. With Redis's entries-read
/// counter: deleted entries minus those the group had read (`entries_read` minus what is still
/// present up to `last`). Without it: 1 when an entry after `last` is known to be deleted (XDEL
/// records it; trimming only shows as a first entry beyond the group's next one).
async fn missed_entries(
    conn: &mut Conn,
    stream: &StreamInfo,
    last: &str,
    entries_read: Option<i64>,
) -> anyhow::Result<u64> {
    let Some(added) = stream.entries_added else {
        return Ok(0);
    };
    let deleted = added.saturating_sub(stream.length);
    if deleted == 0 {
        return Ok(0);
    }
    let at = crate::position::id_key;
    match entries_read {
        Some(read) => {
            let present = count_range(conn, &stream.key, "-", last).await?;
            let read_then_deleted = (read.max(0) as u64).saturating_sub(present);
            Ok(deleted.saturating_sub(read_then_deleted))
        }
        None => {
            let max_deleted = stream.max_deleted_entry_id.as_deref().unwrap_or("0-0");
            let next = redis_io::next_id(last).unwrap_or_default();
            let first = stream.first_id.as_deref().unwrap_or("0-0");
            Ok(u64::from(
                at(max_deleted) > at(last) || at(first) > at(&next),
            ))
        }
    }
}

/// Entries after `after` (see [`inspect::count_after`]).
pub async fn count_after(conn: &mut Conn, key: &str, after: &str) -> anyhow::Result<u64> {
    inspect::count_after(conn, key, after)
        .await
        .context("XRANGE")
}

/// Entries between `start` and `end` (see [`inspect::count_range`]).
pub async fn count_range(
    conn: &mut Conn,
    key: &str,
    start: &str,
    end: &str,
) -> anyhow::Result<u64> {
    inspect::count_range(conn, key, start, end)
        .await
        .context("XRANGE")
}
