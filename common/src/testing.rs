//! Test harness (feature `testing`): a real `redis-server` per test on a free port with its own
//! temp dir (stop, kill and restart on the same port), a fresh database per test (SQLite file, or a
//! new PostgreSQL database when `TEST_DATABASE_URL` is set), unique stream prefixes, and polling
//! helpers. No mocks: everything here starts or talks to the real thing.

use std::{
    future::Future,
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use redis::{Client, aio::ConnectionManager};
use sea_orm::DatabaseConnection;
use sea_orm_migration::MigratorTrait;
use tempfile::TempDir;

use crate::{db, runtime::redis_io};

/// A `redis-server` owned by one test. Killed when dropped.
pub struct RedisServer {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

/// A free TCP port on 127.0.0.1 (bind to 0, read, release).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

impl RedisServer {
    /// Starts a server with append-only persistence (so a restart keeps the streams).
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("mesh-redis-")
            .tempdir()
            .expect("temp dir for redis");
        let mut server = Self {
            port: free_port(),
            dir,
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
        let child = Command::new(&bin)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--appendonly", "yes", "--appendfsync", "everysec"])
            .args(["--save", ""])
            .args(["--daemonize", "no", "--protected-mode", "no"])
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin} (install redis-server): {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if ping(self.port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not answer PING", self.port);
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn client(&self) -> Client {
        Client::open(self.url()).expect("redis url")
    }

    /// A fresh managed connection.
    pub fn connection(&self) -> ConnectionManager {
        redis_io::command_connection(&self.client()).expect("redis connection")
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Clean stop (`SHUTDOWN`, data kept on disk).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.write_all(b"SHUTDOWN\r\n");
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Starts a stopped server again.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "server is running");
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if n >= 5 && &buf[..5] == b"+PONG")
}

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("t{}:", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A database of its own for one test: a SQLite file in a temp dir, or — when
/// `TEST_DATABASE_URL` names a PostgreSQL server — a new database created on it.
pub struct TestDb {
    pub url: String,
    _dir: Option<TempDir>,
    /// On PostgreSQL: the server's URL and the database's name, dropped with the `TestDb` so that
    /// a full run does not leave hundreds of databases (and GBs of disk) behind.
    postgres: Option<(String, String)>,
}

impl TestDb {
    pub async fn new() -> Self {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(base) if base.starts_with("postgres") => {
                let name = format!("mesh_test_{}", uuid::Uuid::new_v4().simple());
                let admin = db::connect(&base).await.expect("connect TEST_DATABASE_URL");
                use sea_orm::ConnectionTrait;
                admin
                    .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                    .await
                    .expect("create test database");
                let _ = admin.close().await;
                Self {
                    url: replace_db_name(&base, &name),
                    _dir: None,
                    postgres: Some((base, name)),
                }
            }
            _ => {
                let dir = tempfile::Builder::new()
                    .prefix("mesh-db-")
                    .tempdir()
                    .expect("temp dir for sqlite");
                let path: PathBuf = dir.path().join("test.db");
                Self {
                    url: format!("sqlite://{}?mode=rwc", path.display()),
                    _dir: Some(dir),
                    postgres: None,
                }
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.url.starts_with("postgres")
    }

    /// Connects and runs the migrator `M`.
    pub async fn connect<M: MigratorTrait>(&self) -> DatabaseConnection {
        let conn = db::connect(&self.url).await.expect("connect test database");
        M::up(&conn, None).await.expect("migrate test database");
        conn
    }
}

impl Drop for TestDb {
    /// Drops the PostgreSQL database, closing the connections still open on it (the test's pools,
    /// a service binary being torn down). Runs on a thread of its own with its own runtime, as
    /// `Drop` cannot await and may run inside the test's runtime; failures are only reported.
    fn drop(&mut self) {
        let Some((base, name)) = self.postgres.take() else {
            return;
        };
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                use sea_orm::ConnectionTrait;
                let admin = db::connect(&base).await.map_err(|e| e.to_string())?;
                let result = admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await;
                let _ = admin.close().await;
                result.map(|_| ()).map_err(|e| e.to_string())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: could not drop a test database: {e}"),
            Err(_) => eprintln!("warning: dropping a test database panicked"),
        }
    }
}

fn replace_db_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[scheme_end..].find('/').map(|i| i + scheme_end);
    let mut out = match path_start {
        Some(i) => format!("{}/{name}", &base[..i]),
        None => format!("{base}/{name}"),
    };
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A spawned process (a worker, a service binary) that is killed (`SIGKILL`) if still running when dropped, so a failing
/// test leaves no process behind.
pub struct Proc(pub Child);

impl Proc {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Sends `SIGTERM` (through `kill -TERM <pid>`).
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM {} failed", self.pid());
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) -> std::process::ExitStatus {
        self.0.kill().expect("kill -9");
        self.0.wait().expect("reap killed process")
    }

    /// Waits up to `timeout` for the process to exit on its own; panics if it does not.
    pub async fn wait_exit(&mut self, timeout: std::time::Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "process {} still running after {timeout:?}",
                self.pid()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// `SIGTERM`, then asserts a clean exit (status 0) within `timeout`.
    pub async fn stop_cleanly(&mut self, timeout: std::time::Duration) {
        self.sigterm();
        let status = self.wait_exit(timeout).await;
        assert_eq!(
            status.code(),
            Some(0),
            "exit status after SIGTERM: {status:?}"
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Polls `check` every 20 ms until it returns true; panics with `what` after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub use crate::runtime::inspect::{GroupState, group_state};

/// Waits until `group` has read everything on `stream_key` and nothing is pending.
pub async fn wait_drained(
    conn: &mut ConnectionManager,
    stream_key: &str,
    group: &str,
    timeout: Duration,
) {
    let what = format!("group {group} drained on {stream_key}");
    wait_until(timeout, &what, || {
        let mut conn = conn.clone();
        async move {
            matches!(
                group_state(&mut conn, stream_key, group).await,
                Some(GroupState {
                    pending: 0,
                    lag: Some(0),
                    ..
                })
            )
        }
    })
    .await;
}

/// Waits until at least `n` clients are blocked in `XREADGROUP` on this server (`CLIENT LIST`).
///
/// A replica joins a group only when a read first hands it entries (Redis 7.0 creates the
/// consumer then), and its `/readyz` may answer a moment before its first read. Tests that assert
/// replicas shared the work wait for every replica's reader to block before publishing: each
/// `XADD` then wakes a waiting reader, so every replica gets entries.
pub async fn wait_blocked_readers(conn: &mut ConnectionManager, n: usize, timeout: Duration) {
    let what = format!("{n} readers blocked in XREADGROUP");
    wait_until(timeout, &what, || {
        let mut conn = conn.clone();
        async move {
            let clients: String = redis::cmd("CLIENT")
                .arg("LIST")
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            let blocked = clients
                .lines()
                .filter(|line| {
                    let mut fields = line.split(' ');
                    let flags_blocked = fields
                        .clone()
                        .any(|f| f.strip_prefix("flags=").is_some_and(|v| v.contains('b')));
                    flags_blocked && fields.any(|f| f == "cmd=xreadgroup")
                })
                .count();
            blocked >= n
        }
    })
    .await;
}

/// Length of a stream.
pub async fn xlen(conn: &mut ConnectionManager, stream_key: &str) -> u64 {
    redis::cmd("XLEN")
        .arg(stream_key)
        .query_async(conn)
        .await
        .unwrap_or(0)
}

/// The path of a binary of this workspace built next to the running test (`target/<profile>/`).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test-binary>
    let dir = exe
        .parent()
        .and_then(|p| p.parent())
        .expect("target profile dir");
    dir.join(name)
}
