//! A real `redis-server` per test on a free port with its own temp dir: stopped, killed and
//! restarted on the same port, with its append-only file kept, for the fault tests.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::connection::{Conn, RedisTarget};
use tempfile::TempDir;

use crate::runtime::redis_io;

/// A `redis-server` owned by one test. Killed when dropped.
pub struct RedisServer {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
    /// With an ACL file (`start_with_acl`): the operator's password, which [`Self::url`] uses.
    operator_password: Option<String>,
    /// `appendfsync`: `everysec`, or `always` for a server that a test kills with `kill -9`
    /// and must lose no acknowledged write ([`Self::start_durable`]).
    fsync: &'static str,
    /// A node of a Redis Cluster (`redis_cluster.rs`): `--cluster-enabled yes`.
    cluster_node: bool,
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
        Self::start_with_fsync("everysec")
    }

    /// [`Self::start`] with `appendfsync always`: every write is on disk before Redis answers,
    /// so a `kill -9` ([`Self::kill9`]) loses nothing it acknowledged.
    pub fn start_durable() -> Self {
        Self::start_with_fsync("always")
    }

    fn start_with_fsync(fsync: &'static str) -> Self {
        Self::launch("mesh-redis-", fsync, None, false, |_| {})
    }

    /// Starts a server whose users are those of `acl` (an ACL file, `common::acl`), with the
    /// `default` user off. [`Self::url`] and the connections connect as `operator` with
    /// `operator_password`; [`Self::url_as`] as anyone. `stop` is a kill here: the operator may
    /// not `SHUTDOWN`.
    pub fn start_with_acl(acl: &str, operator_password: &str) -> Self {
        Self::launch(
            "mesh-redis-",
            "everysec",
            Some(operator_password.to_owned()),
            false,
            |dir| std::fs::write(dir.join("users.acl"), acl).expect("write the ACL file"),
        )
    }

    /// Starts a node for a Redis Cluster (not yet part of one): its cluster state in
    /// `nodes.conf` in its directory, a node that does not answer for 1 s taken as failed.
    pub(crate) fn start_cluster_node() -> Self {
        Self::launch("mesh-redis-cluster-", "always", None, true, |_| {})
    }

    /// The one way a server starts: a temp dir (`prepare` writes into it first), a free port.
    fn launch(
        prefix: &str,
        fsync: &'static str,
        operator_password: Option<String>,
        cluster_node: bool,
        prepare: impl FnOnce(&Path),
    ) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .expect("temp dir for redis");
        prepare(dir.path());
        let mut server = Self {
            port: free_port(),
            dir,
            child: None,
            operator_password,
            fsync,
            cluster_node,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
        let mut command = Command::new(&bin);
        command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--appendonly", "yes", "--appendfsync", self.fsync])
            .args(["--save", ""])
            .args(["--daemonize", "no", "--protected-mode", "no"]);
        if self.cluster_node {
            command
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", "nodes.conf"])
                .args(["--cluster-node-timeout", "1000"]);
        }
        if self.operator_password.is_some() {
            command
                .arg("--aclfile")
                .arg(self.dir.path().join("users.acl"));
        }
        let child = command
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin} (install redis-server): {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        let acl = self.operator_password.is_some();
        while Instant::now() < deadline {
            if ping(self.port, acl) {
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
        match &self.operator_password {
            Some(password) => self.url_as(crate::acl::OPERATOR, password),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// The URL that connects as `user` with `password`.
    pub fn url_as(&self, user: &str, password: &str) -> String {
        format!("redis://{user}:{password}@127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where this server is, for workers and connections.
    pub fn target(&self) -> RedisTarget {
        RedisTarget::open(&self.url()).expect("redis url")
    }

    /// A fresh managed connection.
    pub fn connection(&self) -> Conn {
        redis_io::command_connection(&self.target()).expect("redis connection")
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Clean stop (`SHUTDOWN`, data kept on disk; a kill with an ACL file).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.operator_password.is_some() {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
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

    /// `kill -9`: no shutdown, no last write; what is on disk is what the restart finds.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
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

/// Whether the server answers `PING` (as the password-less `health` user when it has an ACL).
fn ping(port: u16, acl: bool) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let command: &[u8] = if acl {
        b"AUTH health any\r\nPING\r\n"
    } else {
        b"PING\r\n"
    };
    if s.write_all(command).is_err() {
        return false;
    }
    let mut reply = Vec::new();
    let mut buf = [0u8; 64];
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
        }
        if reply.windows(5).any(|w| w == b"+PONG") {
            return true;
        }
        if reply.starts_with(b"-") {
            break;
        }
    }
    false
}

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("t{}:", &uuid::Uuid::new_v4().simple().to_string()[..12])
}
