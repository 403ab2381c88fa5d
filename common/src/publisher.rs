//! Publishing envelopes to streams. Services publish through the outbox (`crate::db::outbox`);
//! this is the Redis side its relay uses, and what tools and tests use directly (also as
//! `runtime::Publisher`).

use crate::connection::Conn;
use redis::RedisResult;

use crate::{envelope::Envelope, keys::Keys};

/// Adds envelopes to streams of one mesh prefix.
#[derive(Clone)]
pub struct Publisher {
    conn: Conn,
    keys: Keys,
}

impl Publisher {
    pub fn new(conn: Conn, keys: Keys) -> Self {
        Self { conn, keys }
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

    /// `XADD`s many (stream, fields) entries in one pipeline, in order (the outbox relay).
    pub async fn publish_fields_many(
        &self,
        items: &[(String, Vec<(String, String)>)],
    ) -> RedisResult<Vec<String>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (stream, fields) in items {
            let cmd = pipe.cmd("XADD").arg(self.keys.stream(stream)).arg("*");
            for (k, v) in fields {
                cmd.arg(k).arg(v);
            }
        }
        pipe.query_async(&mut self.conn.clone()).await
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
