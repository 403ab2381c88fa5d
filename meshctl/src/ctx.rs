//! What every command needs — the connection, the key naming, the output mode — and the errors
//! that map to meshctl's exit codes.

use std::time::Duration;

use anyhow::Context as _;
use common::connection::{Conn, RedisTarget};
use common::{Keys, runtime::redis_io};
use redis::Value;

/// Exit codes. `check` uses 0/1/2 like a monitoring probe; errors use the `sysexits` numbers so a
/// script can tell them from `check`'s verdicts.
pub mod exit {
    use super::CliError;

    pub const OK: u8 = 0;
    pub const WARNING: u8 = 1;
    pub const CRITICAL: u8 = 2;
    /// Any failure not listed below.
    pub const FAILURE: u8 = 3;
    pub const USAGE: u8 = 64;
    /// A bad id, time, duration or value.
    pub const BAD_INPUT: u8 = 65;
    /// Unknown stream, group or entry.
    pub const NOT_FOUND: u8 = 66;
    /// Redis cannot be reached.
    pub const UNREACHABLE: u8 = 69;

    /// The exit code of an error: the first [`CliError`] or Redis error of its chain decides.
    pub fn code_of(error: &anyhow::Error) -> u8 {
        for cause in error.chain() {
            if let Some(e) = cause.downcast_ref::<CliError>() {
                return match e {
                    CliError::Unreachable(_) => UNREACHABLE,
                    CliError::Usage(_) => USAGE,
                    CliError::NotFound(_) => NOT_FOUND,
                    CliError::BadInput(_) => BAD_INPUT,
                };
            }
            if let Some(e) = cause.downcast_ref::<redis::RedisError>() {
                return if super::is_unreachable(e) {
                    UNREACHABLE
                } else if e.code() == Some("NOGROUP") {
                    NOT_FOUND
                } else if e.to_string().contains("Invalid stream ID") {
                    BAD_INPUT
                } else {
                    FAILURE
                };
            }
        }
        FAILURE
    }
}

/// Errors the operator can act on, each with its own exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Unreachable(String),
    /// Flags that parse but make no sense together.
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadInput(String),
}

pub fn bad_input(msg: impl Into<String>) -> anyhow::Error {
    CliError::BadInput(msg.into()).into()
}

pub fn not_found(msg: impl Into<String>) -> anyhow::Error {
    CliError::NotFound(msg.into()).into()
}

pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    CliError::Usage(msg.into()).into()
}

/// `redis://user:****@host:6379/0` for `redis://user:secret@host:6379/0`: safe to print.
pub fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:****{}", &rest[at..]),
        None => url.to_owned(),
    }
}

fn is_unreachable(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_refusal() || e.is_timeout() || e.is_connection_dropped()
}

/// The connection, the key naming of one mesh, and the output mode. Cheap to clone (the
/// connection is shared): the console gives each request its own.
#[derive(Clone)]
pub struct Ctx {
    pub conn: Conn,
    /// Where Redis is: commands that visit every node (`SCAN`) connect to each master.
    pub target: RedisTarget,
    pub keys: Keys,
    pub json: bool,
    /// Global flags to repeat in a command meshctl suggests (see `main::repeat_args`).
    pub repeat_args: Vec<String>,
}

impl Ctx {
    /// The next page of stream `key` (`XRANGE key <start> + COUNT count`), moving `start` past
    /// its last entry; empty once the stream is read to its end. Start with `start = "-"`.
    pub async fn next_page(
        &mut self,
        key: &str,
        start: &mut String,
        count: usize,
    ) -> anyhow::Result<Vec<redis_io::RawEntry>> {
        let page: Value = redis::cmd("XRANGE")
            .arg(key)
            .arg(&*start)
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.conn)
            .await
            .with_context(|| format!("XRANGE {key}"))?;
        let entries = redis_io::parse_entries(key, page);
        if let Some(last) = entries.last() {
            *start = format!("({}", last.id);
        }
        Ok(entries)
    }

    /// Connects eagerly (a CLI should fail fast, not retry in the background) and pings.
    pub async fn connect(url: &str, prefix: &str, json: bool) -> anyhow::Result<Self> {
        common::keys::check_prefix(prefix).map_err(|e| bad_input(format!("--prefix: {e}")))?;
        let target = RedisTarget::open(url)
            .map_err(|e| bad_input(format!("bad --redis-url `{}`: {e}", mask_password(url))))?;
        let shown = mask_password(url);
        let unreachable = |e: redis::RedisError| {
            anyhow::Error::from(CliError::Unreachable(format!(
                "cannot reach Redis at {shown}: {e}"
            )))
        };
        // Longer than the 1 s `BLOCK` of `tail --follow`.
        let mut conn = target
            .connect(Duration::from_secs(10))
            .await
            .map_err(unreachable)?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(unreachable)?;
        Ok(Self {
            conn,
            target,
            keys: Keys::new(prefix),
            json,
            repeat_args: Vec::new(),
        })
    }

    /// The Redis type of a stream's key (`stream`, `none`, ...).
    async fn kind_of(&mut self, key: &str) -> anyhow::Result<String> {
        redis::cmd("TYPE")
            .arg(key)
            .query_async(&mut self.conn)
            .await
            .context("TYPE")
    }

    /// Whether `stream` exists (as a stream).
    pub async fn is_stream(&mut self, stream: &str) -> anyhow::Result<bool> {
        let key = self.keys.stream(stream);
        Ok(self.kind_of(&key).await? == "stream")
    }

    /// Whether `group` reads `stream` (false when the stream does not exist).
    pub async fn has_group(&mut self, stream: &str, group: &str) -> anyhow::Result<bool> {
        if !self.is_stream(stream).await? {
            return Ok(false);
        }
        let key = self.keys.stream(stream);
        Ok(self.group_names(&key).await?.iter().any(|n| n == group))
    }

    /// The key of a stream, after checking that it exists and is a stream.
    pub async fn require_stream(&mut self, stream: &str) -> anyhow::Result<String> {
        let key = self.keys.stream(stream);
        let kind = self.kind_of(&key).await?;
        match kind.as_str() {
            "stream" => Ok(key),
            "none" => Err(not_found(format!(
                "unknown stream `{stream}` (no key `{key}`; check --prefix)"
            ))),
            other => Err(not_found(format!("`{key}` is a {other}, not a stream"))),
        }
    }

    /// The key of a stream, after checking that `group` reads it.
    pub async fn require_group(&mut self, stream: &str, group: &str) -> anyhow::Result<String> {
        let key = self.require_stream(stream).await?;
        let names = self.group_names(&key).await?;
        if names.iter().any(|n| n == group) {
            Ok(key)
        } else {
            Err(not_found(format!(
                "unknown group `{group}` on stream `{stream}` (groups: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )))
        }
    }

    async fn group_names(&mut self, key: &str) -> anyhow::Result<Vec<String>> {
        let groups: Vec<Value> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(key)
            .query_async(&mut self.conn)
            .await
            .context("XINFO GROUPS")?;
        Ok(groups
            .into_iter()
            .filter_map(|g| redis_io::value_str(redis_io::flat_map(g).get("name")))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_password_in_a_url_is_masked() {
        let mask = super::mask_password;
        assert_eq!(mask("redis://:s3cret@h:6379/0"), "redis://:****@h:6379/0");
        assert_eq!(mask("rediss://u:p@w@h"), "rediss://u:****@h");
        assert_eq!(mask("redis://u@h:1"), "redis://u@h:1");
        assert_eq!(mask("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
