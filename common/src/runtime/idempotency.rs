//! The Redis fast path of exactly-once effects: the `event_id`s a group has processed.
//!
//! Records live in generation sets `<prefix>idem:<group>:<n>`, where `n` numbers consecutive
//! windows of length `retention`. An id is recorded in the current generation and looked up in the
//! current and the previous one; each generation expires two windows after it began. So a record is
//! remembered for at least `retention` and at most twice that — pruned by age with no sweeper and no
//! coordination between consumers — and a set costs Redis a hash insert per event (a sorted set by
//! time would add a skiplist insert, and a sweep).

use std::time::Duration;

use redis::{Pipeline, RedisResult, aio::ConnectionManager};

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
    pub async fn contains(
        &self,
        conn: &mut ConnectionManager,
        event_ids: &[&str],
    ) -> RedisResult<Vec<bool>> {
        if event_ids.is_empty() {
            return Ok(Vec::new());
        }
        let generation = self.generation(chrono::Utc::now().timestamp_millis());
        let (current, previous): (Vec<bool>, Vec<bool>) = redis::pipe()
            .cmd("SMISMEMBER")
            .arg(self.key(generation))
            .arg(event_ids)
            .cmd("SMISMEMBER")
            .arg(self.key(generation - 1))
            .arg(event_ids)
            .query_async(conn)
            .await?;
        Ok(current
            .into_iter()
            .zip(previous)
            .map(|(a, b)| a || b)
            .collect())
    }

    /// Adds the commands that record `event_ids` to `pipe` (their replies ignored).
    pub fn record<'a>(&self, pipe: &mut Pipeline, event_ids: impl IntoIterator<Item = &'a str>) {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let generation = self.generation(now_ms);
        let key = self.key(generation);
        let mut sadd = redis::cmd("SADD");
        sadd.arg(&key);
        let mut any = false;
        for id in event_ids {
            sadd.arg(id);
            any = true;
        }
        if !any {
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
