//! `SCAN` over the whole keyspace: on a cluster each master holds part of it, so every master
//! is scanned (`RedisTarget::masters`).

use std::collections::BTreeSet;

use redis::RedisResult;

use super::{conn::Conn, target::RedisTarget};

/// Keys per `SCAN` call.
const COUNT: usize = 1000;

/// Every key matching `pattern` (a glob; escape names with `keys::glob_escape`) of Redis type
/// `kind` (`stream`, `set`, …), on every master, sorted.
pub async fn scan_keys(
    target: &RedisTarget,
    conn: &mut Conn,
    pattern: &str,
    kind: &str,
) -> RedisResult<Vec<String>> {
    let mut found = BTreeSet::new();
    for mut node in target.masters(conn).await? {
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(COUNT)
                .arg("TYPE")
                .arg(kind)
                .query_async(&mut node)
                .await?;
            found.extend(keys);
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(found.into_iter().collect())
}
