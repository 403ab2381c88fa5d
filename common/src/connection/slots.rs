//! Hash slots (CRC16 of the key, or of its `{tag}`, modulo 16384, as Redis Cluster computes
//! them) and the split of a plain pipeline into one pipeline per slot.

use futures::future::try_join_all;
use redis::{
    Arg, Cmd, Pipeline, RedisResult, Value, aio::ConnectionLike, cluster_async::ClusterConnection,
};

/// The number of hash slots of a Redis Cluster.
const SLOTS: u16 = 16384;

/// The hash slot of `key`: only the part between the first `{` and the next `}` counts, if that
/// part is not empty (a hash tag), so keys with one tag live in one slot.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(hashed) % SLOTS
}

/// Whether all `keys` hash to one slot (what a script or `MULTI` on a cluster needs).
pub fn same_slot<K: AsRef<[u8]>>(keys: &[K]) -> bool {
    keys.windows(2)
        .all(|w| key_slot(w[0].as_ref()) == key_slot(w[1].as_ref()))
}

/// The slot of a command's first key, for the commands whose first argument is their key (all
/// a pipeline of the mesh holds); `None` for the others, which go in a pipeline of their own.
fn command_slot(cmd: &Cmd) -> Option<u16> {
    let mut args = cmd.args_iter();
    let Some(Arg::Simple(name)) = args.next() else {
        return None;
    };
    let name = name.to_ascii_uppercase();
    let key = match name.as_slice() {
        b"EVAL" | b"EVALSHA" => {
            args.next(); // the script or its digest
            let Some(Arg::Simple(numkeys)) = args.next() else {
                return None;
            };
            if numkeys == b"0" {
                return None;
            }
            args.next()
        }
        b"PING" | b"INFO" | b"SCAN" | b"TIME" | b"SCRIPT" | b"CLUSTER" | b"WAIT" => None,
        _ => args.next(),
    };
    match key? {
        Arg::Simple(key) => Some(key_slot(key)),
        _ => None,
    }
}

/// Runs a plain pipeline on a cluster: its commands grouped by slot, one pipeline per slot (sent
/// concurrently, each to its master), the replies put back in the commands' order. A command
/// without a key goes with the command before it (so `WAIT` after an `XADD` waits for that
/// node's replicas).
pub(super) async fn query_split(
    conn: &mut ClusterConnection,
    pipeline: &Pipeline,
) -> RedisResult<Vec<Value>> {
    let mut groups: Vec<(Option<u16>, Vec<usize>, Pipeline)> = Vec::new();
    let mut previous: Option<usize> = None;
    for (index, cmd) in pipeline.cmd_iter().enumerate() {
        let slot = command_slot(cmd);
        let found = match slot {
            Some(_) => groups.iter().position(|(s, _, _)| *s == slot),
            // A keyless command (`WAIT`) goes to the node of the command before it.
            None => previous,
        };
        let group = match found {
            Some(group) => group,
            None => {
                groups.push((slot, Vec::new(), redis::pipe()));
                groups.len() - 1
            }
        };
        previous = Some(group);
        let (_, indices, pipe) = &mut groups[group];
        indices.push(index);
        pipe.add_command(cmd.clone());
    }
    if let [(_, _, pipe)] = groups.as_slice() {
        return conn.req_packed_commands(pipe, 0, pipe.len()).await;
    }
    let replies = try_join_all(groups.iter().map(|(_, _, pipe)| {
        let mut conn = conn.clone();
        async move { conn.req_packed_commands(pipe, 0, pipe.len()).await }
    }))
    .await?;
    let mut out = vec![Value::Nil; pipeline.len()];
    for ((_, indices, _), values) in groups.iter().zip(replies) {
        for (&index, value) in indices.iter().zip(values) {
            out[index] = value;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_those_of_redis_cluster() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(key_slot(b"123456789"), 12739);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert!(same_slot(&["a{x}", "b{x}", "x"]));
        assert!(!same_slot(&["a", "b"]));
    }

    #[test]
    fn pipeline_commands_are_keyed_by_their_first_key() {
        let mut xadd = redis::cmd("XADD");
        xadd.arg("orders").arg("*");
        assert_eq!(command_slot(&xadd), Some(key_slot(b"orders")));
        let mut eval = redis::cmd("EVALSHA");
        eval.arg("abc").arg(1).arg("k");
        assert_eq!(command_slot(&eval), Some(key_slot(b"k")));
        assert_eq!(command_slot(&redis::cmd("PING")), None);
        assert_eq!(command_slot(redis::cmd("WAIT").arg(1).arg(100)), None);
    }
}
