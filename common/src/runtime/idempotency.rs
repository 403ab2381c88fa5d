//! The Redis fast path of exactly-once effects: the `event_id`s a group has processed.
//!
//! Records live in generation sets `<prefix>idem:<group>:<n>`, where `n` numbers consecutive
//! windows of length `retention`. An id is recorded in the current generation and looked up in the
//! current and the previous one; each generation expires two windows after it began. So a record is
//! remembered for at least `retention` and at most twice that — pruned by age with no sweeper and no
//! coordination between consumers — and a set costs Redis a hash insert per event (a sorted set by
//! time would add a skiplist insert, and a sweep).

use std::time::Duration;

use crate::connection::Conn;
use redis::{Pipeline, RedisResult};
use uuid::Uuid;

/// The idempotency records of one group.
#[derive(Debug, Clone)]
pub struct IdempotencySet {
    base: String,
    window_ms: i64,
}

impl IdempotencySet {
    /// `base` is `Keys::idempotency(group)`; records are kept at least `retention`.
    pub fn new(base: String, retention: Duration) -> Self {
        Self {
            base,
            window_ms: (retention.as_millis() as i64).max(1000),
        }
    }

    fn generation(&self, now_ms: i64) -> i64 {
        now_ms.div_euclid(self.window_ms)
    }

    fn key(&self, generation: i64) -> String {
        format!("{}:{generation}", self.base)
    }

    /// Which of `event_ids` were recorded (one round trip, two `SMISMEMBER`s).
    pub async fn contains(&self, conn: &mut Conn, event_ids: &[Uuid]) -> RedisResult<Vec<bool>> {
        if event_ids.is_empty() {
            return Ok(Vec::new());
        }
        let generation = self.generation(chrono::Utc::now().timestamp_millis());
        let lookup = |key: String| {
            let mut cmd = redis::cmd("SMISMEMBER");
            cmd.arg(key);
            add_ids(&mut cmd, event_ids.iter().copied());
            cmd
        };
        let (current, previous): (Vec<bool>, Vec<bool>) = redis::pipe()
            .add_command(lookup(self.key(generation)))
            .add_command(lookup(self.key(generation - 1)))
            .query_async(conn)
            .await?;
        Ok(current
            .into_iter()
            .zip(previous)
            .map(|(a, b)| a || b)
            .collect())
    }

    /// Adds the commands that record `event_ids` to `pipe` (their replies ignored).
    pub fn record(&self, pipe: &mut Pipeline, event_ids: impl IntoIterator<Item = Uuid>) {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let generation = self.generation(now_ms);
        let key = self.key(generation);
        let mut sadd = redis::cmd("SADD");
        sadd.arg(&key);
        if add_ids(&mut sadd, event_ids) == 0 {
            return;
        }
        // Expire two windows after the generation began (+ a minute of clock slack).
        let expire_at_ms = (generation + 2) * self.window_ms + 60_000;
        pipe.add_command(sadd)
            .ignore()
            .cmd("PEXPIREAT")
            .arg(&key)
            .arg(expire_at_ms)
            .ignore();
    }
}

/// Adds each id as an argument, in its canonical text form (hyphenated, lower case: what
/// `Uuid`'s `Display` writes and producers send), formatted without allocating. Returns how many.
fn add_ids(cmd: &mut redis::Cmd, ids: impl IntoIterator<Item = Uuid>) -> usize {
    let mut buf = Uuid::encode_buffer();
    let mut n = 0;
    for id in ids {
        cmd.arg(&*id.hyphenated().encode_lower(&mut buf));
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_are_windows_of_the_retention() {
        let set = IdempotencySet::new("idem:g".into(), Duration::from_secs(3600));
        assert_eq!(set.generation(0), 0);
        assert_eq!(set.generation(3_599_999), 0);
        assert_eq!(set.generation(3_600_000), 1);
        assert_eq!(set.key(5), "idem:g:5");
    }
}
