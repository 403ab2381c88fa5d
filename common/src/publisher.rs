//! Publishing envelopes to streams. Services publish through the outbox (`crate::db::outbox`);
//! this is the Redis side its relay uses, and what tools and tests use directly (also as
//! `runtime::Publisher`).

use crate::connection::{Conn, key_slot};
use redis::{ErrorKind, RedisError, RedisResult, Value};

use crate::{envelope::Envelope, keys::Keys};

/// Adds envelopes to streams of one mesh prefix.
#[derive(Clone)]
pub struct Publisher {
    conn: Conn,
    keys: Keys,
    /// Replicas the relay's entries must reach (`WAIT`) before they count as published.
    wait_replicas: u32,
}

/// How long a `WAIT` for replicas may take before the publish counts as failed (and is retried).
const WAIT_TIMEOUT_MS: u64 = 2_000;

impl Publisher {
    pub fn new(conn: Conn, keys: Keys) -> Self {
        Self {
            conn,
            keys,
            wait_replicas: 0,
        }
    }

    /// A publisher whose [`Self::publish_fields_many`] (the outbox relay's) succeeds only once
    /// `replicas` replicas hold the entries: Redis replicates asynchronously, so without it a
    /// master killed right after an `XADD` can take the entry with it.
    pub fn waiting_for(mut self, replicas: u32) -> Self {
        self.wait_replicas = replicas;
        self
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// `XADD` one envelope; returns the new entry id.
    pub async fn publish(&self, stream: &str, envelope: &Envelope) -> RedisResult<String> {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(self.keys.stream(stream)).arg("*");
        for (k, v) in envelope.to_fields() {
            cmd.arg(k).arg(v);
        }
        cmd.query_async(&mut self.conn.clone()).await
    }

    /// `XADD`s many envelopes in one pipeline, in order; returns their ids.
    pub async fn publish_many(&self, items: &[(String, Envelope)]) -> RedisResult<Vec<String>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (stream, envelope) in items {
            let cmd = pipe.cmd("XADD").arg(self.keys.stream(stream)).arg("*");
            for (k, v) in envelope.to_fields() {
                cmd.arg(k).arg(v);
            }
        }
        pipe.query_async(&mut self.conn.clone()).await
    }

    /// `XADD`s many (stream, fields) entries in one pipeline, in order (the outbox relay); with
    /// [`Self::waiting_for`], each run of entries of one slot is followed by a `WAIT` on its
    /// node (a keyless command goes with the command before it, `crate::connection`), and an
    /// entry a replica did not confirm fails the publish, to be published again.
    pub async fn publish_fields_many(
        &self,
        items: &[(String, Vec<(String, String)>)],
    ) -> RedisResult<Vec<String>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = items.iter().map(|(s, _)| self.keys.stream(s)).collect();
        let mut pipe = redis::pipe();
        for (i, (key, (_, fields))) in keys.iter().zip(items).enumerate() {
            let cmd = pipe.cmd("XADD").arg(key).arg("*");
            for (k, v) in fields {
                cmd.arg(k).arg(v);
            }
            let run_ends = keys
                .get(i + 1)
                .is_none_or(|next| key_slot(next.as_bytes()) != key_slot(key.as_bytes()));
            if self.wait_replicas > 0 && run_ends {
                pipe.cmd("WAIT")
                    .arg(self.wait_replicas)
                    .arg(WAIT_TIMEOUT_MS);
            }
        }
        let replies: Vec<Value> = pipe.query_async(&mut self.conn.clone()).await?;
        let mut ids = Vec::with_capacity(items.len());
        for reply in replies {
            match reply {
                Value::Int(acked) if acked < i64::from(self.wait_replicas) => {
                    return Err(RedisError::from((
                        ErrorKind::Io,
                        "entries not confirmed by enough replicas",
                        format!("{acked} of {}", self.wait_replicas),
                    )));
                }
                Value::Int(_) => {}
                other => ids.push(redis::from_redis_value(other)?),
            }
        }
        Ok(ids)
    }

    /// `XADD`s raw fields (for tools and tests that must write what no producer would).
    pub async fn publish_raw(&self, stream: &str, fields: &[(&str, &str)]) -> RedisResult<String> {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(self.keys.stream(stream)).arg("*");
        for (k, v) in fields {
            cmd.arg(*k).arg(*v);
        }
        cmd.query_async(&mut self.conn.clone()).await
    }
}
