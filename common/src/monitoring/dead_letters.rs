//! Dead letters per origin stream and group, for the pairs a service watches, counted without
//! reading the whole dead-letter stream on every refresh: entries are read once, from where the
//! last refresh stopped; a purge or trim (the stream's deleted count moves) starts the count
//! over. A dead letter counts until it is replayed (`dead-letter:replayed`, the set `meshctl dlq
//! replay` and the runtime's replay write) or deleted.

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

/// What the previous refreshes learnt of the dead-letter stream.
#[derive(Debug, Default)]
pub(crate) struct DeadLetterTally {
    /// Last entry read (`0-0`: none).
    last_id: String,
    /// Entries deleted from the stream when it was last read (`entries-added` minus length).
    deleted: u64,
    /// Dead letters of watched pairs, by dead-letter id: (origin stream, group).
    watched: BTreeMap<String, (String, String)>,
    /// The pairs `watched` was collected for.
    pairs: HashSet<(String, String)>,
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
        self.catch_up(conn, keys, pairs).await?;
        let mut counts: HashMap<(String, String), u64> =
            pairs.iter().map(|p| (p.clone(), 0)).collect();
        let ids: Vec<&String> = self.watched.keys().collect();
        for chunk in ids.chunks(CHECK) {
            let replayed: Vec<bool> = redis::cmd("SMISMEMBER")
                .arg(keys.dead_letter_replayed())
                .arg(chunk)
                .query_async(conn)
                .await?;
            for (id, replayed) in chunk.iter().zip(replayed) {
                if !replayed && let Some(pair) = self.watched.get(*id) {
                    *counts.entry(pair.clone()).or_default() += 1;
                }
            }
        }
        Ok(counts)
    }

    /// Reads the entries added since the last refresh (all of them after a deletion).
    async fn catch_up(
        &mut self,
        conn: &mut Conn,
        keys: &Keys,
        pairs: &HashSet<(String, String)>,
    ) -> RedisResult<()> {
        let key = keys.dead_letter();
        let deleted = deleted_entries(conn, &key).await?;
        if deleted != Some(self.deleted) || self.last_id.is_empty() || self.pairs != *pairs {
            // First read, entries were purged or trimmed (or the stream was deleted), or other
            // pairs are watched now: count again from the start.
            *self = Self {
                last_id: "0-0".into(),
                deleted: deleted.unwrap_or(0),
                watched: BTreeMap::new(),
                pairs: pairs.clone(),
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
                let field = |name: &str| {
                    entry.fields.as_deref().and_then(|f| {
                        crate::envelope::field(f, name)
                            .map(|v| String::from_utf8_lossy(v).into_owned())
                    })
                };
                if let (Some(stream), Some(group)) =
                    (field(fields::ORIGIN_STREAM), field(fields::GROUP))
                {
                    let pair = (stream, group);
                    if pairs.contains(&pair) {
                        self.watched.insert(entry.id, pair);
                    }
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
