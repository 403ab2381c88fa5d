//! Running the real `meshctl` binary (`CARGO_BIN_EXE_meshctl`) against a test's `redis-server`:
//! one run with its exit code and output, or a live one (`tail --follow`, `top`) read line by line;
//! and the stream ids and times the tests compare meshctl's answers with.

use std::{process::Stdio, time::Duration};

use tokio::io::{AsyncBufReadExt, BufReader, Lines};

use common::connection::Conn;
use common::{Keys, testing::TestRedis};
use serde_json::Value;

/// What one run of meshctl printed and returned.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// stdout as one JSON document; panics (with stderr) if the command failed.
    pub fn json(&self) -> Value {
        assert_eq!(self.code, 0, "meshctl failed: {self:?}");
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// stdout as JSON lines.
    pub fn json_lines(&self) -> Vec<Value> {
        assert_eq!(self.code, 0, "meshctl failed: {self:?}");
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}")))
            .collect()
    }
}

/// `meshctl <args>` with the environment fallbacks removed, then `env` set.
fn command(env: &[(&str, &str)], args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_meshctl"));
    cmd.env_remove("REDIS_URL")
        .env_remove("MESH_STREAM_PREFIX")
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs `meshctl <args>` with only `env` as environment fallbacks, without blocking the test's
/// runtime.
pub async fn run_env(env: &[(&str, &str)], args: &[&str]) -> Out {
    let child = command(env, args)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn meshctl");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("meshctl {args:?} did not finish in 60 s"))
        .expect("meshctl output");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `meshctl --redis-url <url> --prefix <prefix> <args>` (environment fallbacks removed, so
/// the flags alone decide).
pub async fn run_url(url: &str, prefix: &str, args: &[&str]) -> Out {
    let mut all = vec!["--redis-url", url, "--prefix", prefix];
    all.extend_from_slice(args);
    run_env(&[], &all).await
}

/// A meshctl that keeps running (`tail --follow`, `top`), read line by line as it prints; killed
/// when dropped.
pub struct Live {
    child: tokio::process::Child,
    lines: Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Live {
    /// Starts `meshctl --json <args>` against this test's server and prefix.
    pub fn spawn(redis: &dyn TestRedis, keys: &Keys, args: &[&str]) -> Self {
        let url = redis.url();
        let mut all = vec!["--redis-url", &url, "--prefix", keys.prefix(), "--json"];
        all.extend_from_slice(args);
        let mut child = command(&[], &all)
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn meshctl");
        let stdout = child.stdout.take().expect("piped stdout");
        Self {
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// The next JSON line, or `None` if none comes within `wait`; panics if meshctl exits.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Value> {
        // `next_line` is cancel safe: a line cut by the timeout is read whole next time.
        let line = tokio::time::timeout(wait, self.lines.next_line())
            .await
            .ok()?;
        match line.expect("read meshctl stdout") {
            Some(l) => Some(serde_json::from_str(&l).unwrap_or_else(|e| panic!("{l}: {e}"))),
            None => panic!("meshctl exited: {:?}", self.child.wait().await),
        }
    }

    /// The next JSON line; panics if none comes within 30 s.
    pub async fn next(&mut self) -> Value {
        self.next_within(Duration::from_secs(30))
            .await
            .expect("a line from meshctl within 30 s")
    }

    /// Whether meshctl is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

/// Runs meshctl against this test's server and prefix.
pub async fn run(redis: &dyn TestRedis, keys: &Keys, args: &[&str]) -> Out {
    run_url(&redis.url(), keys.prefix(), args).await
}

/// Runs meshctl with `--json` and parses its output.
pub async fn json(redis: &dyn TestRedis, keys: &Keys, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    run(redis, keys, &all).await.json()
}

/// The ids of a stream's entries, oldest first.
pub async fn ids_of(conn: &mut Conn, stream_key: &str) -> Vec<String> {
    common::stream_testing::stream_entries(conn, stream_key)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

/// Creates `group` at `0` and reads `count` entries as `<group>-1` without acking them.
pub async fn read_without_ack(conn: &mut Conn, stream_key: &str, group: &str, count: usize) {
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream_key)
        .arg(group)
        .arg("0")
        .query_async(conn)
        .await
        .unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg(format!("{group}-1"))
        .arg("COUNT")
        .arg(count)
        .arg("STREAMS")
        .arg(stream_key)
        .arg(">")
        .query_async(conn)
        .await
        .unwrap();
}

/// The time of a stream id, as meshctl prints it (RFC 3339 UTC, milliseconds).
pub fn id_time(id: &str) -> String {
    let ms: i64 = id.split('-').next().unwrap().parse().unwrap();
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The milliseconds part of a stream id.
pub fn id_ms(id: &str) -> u64 {
    id.split('-').next().unwrap().parse().unwrap()
}

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis() as u64
}

/// The row of `list` whose `key` is `value`.
pub fn find<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .find(|row| row[key] == value)
        .unwrap_or_else(|| panic!("no row with {key} = {value} in {list:#}"))
}
