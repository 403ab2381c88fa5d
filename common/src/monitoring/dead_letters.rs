//! Dead letters per origin stream and group, for the pairs a service watches, counted from the
//! dead-letter stream of each watched origin stream without reading it whole on every refresh:
//! entries are read once, from where the last refresh stopped; a purge or trim (the stream's
//! deleted count moves) starts its count over. A dead letter counts until it is replayed (the
//! origin's `dead-letter-replayed` set, which `meshctl dlq replay` and the runtime's replay
//! write) or deleted.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::connection::Conn;
use redis::{RedisResult, Value};

use crate::{
    keys::Keys,
    runtime::{dead_letter::fields, redis_io},
};

/// Entries read per `XRANGE`.
const PAGE: usize = 1000;
/// Ids checked per `SMISMEMBER`.
const CHECK: usize = 1000;

/// What the previous refreshes learnt of the dead-letter streams, per origin stream.
#[derive(Debug, Default)]
pub(crate) struct DeadLetterTally {
    origins: HashMap<String, OriginTally>,
}

/// What the previous refreshes learnt of the dead-letter stream of one origin stream.
#[derive(Debug, Default)]
struct OriginTally {
    /// Last entry read (`0-0`: none).
    last_id: String,
    /// Entries deleted from the stream when it was last read (`entries-added` minus length).
    deleted: u64,
    /// Dead letters of watched groups, by dead-letter id: the group.
    watched: BTreeMap<String, String>,
    /// The groups `watched` was collected for.
    groups: HashSet<String>,
}

impl DeadLetterTally {
    /// Dead letters not replayed per watched (origin stream, group); every pair of `pairs` is
    /// in the answer, with 0 when it has none.
    pub async fn count(
        &mut self,
        conn: &mut Conn,
        keys: &Keys,
        pairs: &HashSet<(String, String)>,
    ) -> RedisResult<HashMap<(String, String), u64>> {
        let mut counts: HashMap<(String, String), u64> =
            pairs.iter().map(|p| (p.clone(), 0)).collect();
        let mut by_origin: HashMap<&str, HashSet<String>> = HashMap::new();
        for (stream, group) in pairs {
            by_origin.entry(stream).or_default().insert(group.clone());
        }
        self.origins
            .retain(|origin, _| by_origin.contains_key(origin.as_str()));
        for (origin, groups) in by_origin {
            let tally = self.origins.entry(origin.to_owned()).or_default();
            tally.catch_up(conn, keys, origin, &groups).await?;
            let ids: Vec<&String> = tally.watched.keys().collect();
            for chunk in ids.chunks(CHECK) {
                let replayed: Vec<bool> = redis::cmd("SMISMEMBER")
                    .arg(keys.dead_letter_replayed(origin))
                    .arg(chunk)
                    .query_async(conn)
                    .await?;
                for (id, replayed) in chunk.iter().zip(replayed) {
                    if !replayed && let Some(group) = tally.watched.get(*id) {
                        *counts
                            .entry((origin.to_owned(), group.clone()))
                            .or_default() += 1;
                    }
                }
            }
        }
        Ok(counts)
    }
}

impl OriginTally {
    /// Reads the entries added since the last refresh (all of them after a deletion).
    async fn catch_up(
        &mut self,
        conn: &mut Conn,
        keys: &Keys,
        origin: &str,
        groups: &HashSet<String>,
    ) -> RedisResult<()> {
        let key = keys.dead_letter(origin);
        let deleted = deleted_entries(conn, &key).await?;
        if deleted != Some(self.deleted) || self.last_id.is_empty() || self.groups != *groups {
            // First read, entries were purged or trimmed (or the stream was deleted), or other
            // groups are watched now: count again from the start.
            *self = Self {
                last_id: "0-0".into(),
                deleted: deleted.unwrap_or(0),
                watched: BTreeMap::new(),
                groups: groups.clone(),
            };
        }
        if deleted.is_none() {
            return Ok(());
        }
        loop {
            let page: Value = redis::cmd("XRANGE")
                .arg(&key)
                .arg(format!("({}", self.last_id))
                .arg("+")
                .arg("COUNT")
                .arg(PAGE)
                .query_async(conn)
                .await?;
            let entries = redis_io::parse_entries(&key, page);
            let Some(last) = entries.last() else {
                return Ok(());
            };
            self.last_id = last.id.clone();
            let full = entries.len() == PAGE;
            for entry in entries {
                let group = entry.fields.as_deref().and_then(|f| {
                    crate::envelope::field(f, fields::GROUP)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                });
                if let Some(group) = group
                    && groups.contains(&group)
                {
                    self.watched.insert(entry.id, group);
                }
            }
            if !full {
                return Ok(());
            }
        }
    }
}

/// Entries ever deleted or trimmed from the stream at `key` (`entries-added` minus `length`);
/// `None` when the stream does not exist.
async fn deleted_entries(conn: &mut Conn, key: &str) -> RedisResult<Option<u64>> {
    let exists: bool = redis::cmd("EXISTS").arg(key).query_async(conn).await?;
    if !exists {
        return Ok(None);
    }
    let info: Value = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(key)
        .query_async(conn)
        .await?;
    let info = redis_io::flat_map(info);
    let added = redis_io::value_int(info.get("entries-added")).unwrap_or(0);
    let length = redis_io::value_int(info.get("length")).unwrap_or(0);
    Ok(Some(added.saturating_sub(length).max(0) as u64))
}
