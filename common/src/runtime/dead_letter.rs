//! The dead-letter streams, one per origin stream and in its slot (`crate::keys`): what a group
//! could not process, with where it came from and why, and the replay that sends it back to
//! that group only.

use crate::connection::{Conn, RedisTarget, scan_keys};
use chrono::{SecondsFormat, Utc};
use redis::{RedisResult, Script};

use crate::{envelope::REPLAY_FOR_GROUP_FIELD, keys::Keys};

/// Fields the dead-letter stream adds to the original entry's fields.
pub mod fields {
    pub const ORIGIN_STREAM: &str = "dlq_origin_stream";
    pub const ORIGIN_ID: &str = "dlq_origin_id";
    pub const GROUP: &str = "dlq_group";
    pub const CONSUMER: &str = "dlq_consumer";
    pub const DELIVERY_COUNT: &str = "dlq_delivery_count";
    pub const LAST_ERROR: &str = "dlq_last_error";
    pub const FAILED_AT: &str = "dlq_failed_at";
    /// All of the above.
    pub const ALL: [&str; 7] = [
        ORIGIN_STREAM,
        ORIGIN_ID,
        GROUP,
        CONSUMER,
        DELIVERY_COUNT,
        LAST_ERROR,
        FAILED_AT,
    ];
}

/// Where and why an entry failed.
#[derive(Debug, Clone)]
pub struct Failure<'a> {
    /// Unprefixed origin stream.
    pub origin_stream: &'a str,
    pub origin_id: &'a str,
    pub group: &'a str,
    pub consumer: &'a str,
    pub delivery_count: u64,
    pub last_error: &'a str,
}

/// Writes the entry to the dead-letter stream and acknowledges it at the origin, atomically
/// (`MULTI`): a crash can neither lose it nor dead-letter it twice.
pub async fn dead_letter(
    conn: &mut Conn,
    keys: &Keys,
    original: &[(String, Vec<u8>)],
    failure: &Failure<'_>,
) -> RedisResult<String> {
    let mut xadd = redis::cmd("XADD");
    xadd.arg(keys.dead_letter(failure.origin_stream)).arg("*");
    // Original fields first, without a replay marker of an earlier replay.
    for (name, value) in original {
        if name != REPLAY_FOR_GROUP_FIELD && !fields::ALL.contains(&name.as_str()) {
            xadd.arg(name.as_str()).arg(&value[..]);
        }
    }
    let error: String = failure.last_error.chars().take(2000).collect();
    xadd.arg(fields::ORIGIN_STREAM)
        .arg(failure.origin_stream)
        .arg(fields::ORIGIN_ID)
        .arg(failure.origin_id)
        .arg(fields::GROUP)
        .arg(failure.group)
        .arg(fields::CONSUMER)
        .arg(failure.consumer)
        .arg(fields::DELIVERY_COUNT)
        .arg(failure.delivery_count)
        .arg(fields::LAST_ERROR)
        .arg(error)
        .arg(fields::FAILED_AT)
        .arg(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true));
    let (id, _acked): (String, i64) = redis::pipe()
        .atomic()
        .add_command(xadd)
        .cmd("XACK")
        .arg(keys.stream(failure.origin_stream))
        .arg(failure.group)
        .arg(failure.origin_id)
        .query_async(conn)
        .await?;
    Ok(id)
}

/// Outcome of a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// Re-added to the origin stream under this new id.
    Replayed { new_id: String },
    /// This dead-letter entry was replayed before; nothing was done.
    AlreadyReplayed,
    /// No such dead-letter entry.
    NotFound,
}

/// Re-adds a dead-letter entry's original fields to its origin stream, marked so that only the
/// failed group processes it. Atomic and at most once per dead-letter entry. `KEYS`: the
/// dead-letter stream, its replayed set, the origin stream (one slot).
const REPLAY_SCRIPT: &str = r#"
local entry = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #entry == 0 then return {'missing'} end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return {'replayed-before'} end
local f = entry[1][2]
local group
local out = {}
for i = 1, #f, 2 do
  local k, v = f[i], f[i + 1]
  if k == 'dlq_group' then group = v
  elseif string.sub(k, 1, 4) ~= 'dlq_' and k ~= 'replay_for_group' then
    out[#out + 1] = k
    out[#out + 1] = v
  end
end
if not group then return {'missing'} end
out[#out + 1] = 'replay_for_group'
out[#out + 1] = group
local id = redis.call('XADD', KEYS[3], '*', unpack(out))
redis.call('SADD', KEYS[2], ARGV[1])
return {'ok', id}
"#;

/// Replays one entry of the dead-letter stream of `origin` (unprefixed; see [`Replay`]).
pub async fn replay(
    conn: &mut Conn,
    keys: &Keys,
    origin: &str,
    dead_letter_id: &str,
) -> RedisResult<Replay> {
    let reply: Vec<String> = Script::new(REPLAY_SCRIPT)
        .key(keys.dead_letter(origin))
        .key(keys.dead_letter_replayed(origin))
        .key(keys.stream(origin))
        .arg(dead_letter_id)
        .invoke_async(conn)
        .await?;
    Ok(match reply.first().map(String::as_str) {
        Some("ok") => Replay::Replayed {
            new_id: reply.get(1).cloned().unwrap_or_default(),
        },
        Some("replayed-before") => Replay::AlreadyReplayed,
        _ => Replay::NotFound,
    })
}

/// The origin streams (unprefixed) that have a dead-letter stream, on every master, sorted.
pub async fn origins(
    target: &RedisTarget,
    conn: &mut Conn,
    keys: &Keys,
) -> RedisResult<Vec<String>> {
    let found = scan_keys(target, conn, &keys.dead_letter_pattern(), "stream").await?;
    Ok(found
        .iter()
        .filter_map(|key| keys.dead_letter_origin(key).map(str::to_owned))
        .collect())
}
