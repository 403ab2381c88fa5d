//! A private PostgreSQL cluster for one test, which the test may stop and start again (a
//! database outage): `initdb` into a temp dir, `pg_ctl` on a free port, trust authentication on
//! 127.0.0.1 only. Run as the `postgres` user when the test runs as root (`initdb` and
//! `postgres` refuse root), as `.ci/start-postgres` does. The binaries are those of
//! `PG_BIN_DIR`, else the newest `/usr/lib/postgresql/<version>/bin`, else `PATH`'s.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use tempfile::TempDir;

use super::redis_server::free_port;

/// A PostgreSQL server owned by one test; stopped (immediately) and its files removed on drop.
pub struct PostgresCluster {
    bin: PathBuf,
    dir: TempDir,
    port: u16,
    running: bool,
}

impl PostgresCluster {
    /// Initialises a cluster and starts it; waits until it accepts connections.
    pub fn start() -> Self {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("mesh-pg-")
            .tempdir()
            .expect("temp dir for postgres");
        if is_root() {
            chown_to_postgres(dir.path());
        }
        let cluster = Self {
            bin,
            dir,
            port: free_port(),
            running: false,
        };
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-locale",
                "-E",
                "UTF8",
            ],
        );
        let mut cluster = cluster;
        cluster.start_again();
        cluster
    }

    /// The server's URL, on its `postgres` database (for `TestDb::on_postgres`).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server: `pg_ctl stop -m fast` (sessions are terminated, as in an operator's
    /// restart or a failover) and waits until it is down.
    pub fn stop(&mut self) {
        if self.running {
            self.pg_ctl(&["stop", "-m", "fast", "-w"]);
            self.running = false;
        }
    }

    /// Starts the stopped server again on the same port and files.
    pub fn start_again(&mut self) {
        assert!(!self.running, "postgres is running");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off",
            self.port,
            path_str(self.dir.path())
        );
        let log = self.dir.path().join("server.log");
        self.pg_ctl(&["start", "-w", "-l", path_str(&log), "-o", &options]);
        self.running = true;
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.data_dir();
        let mut all = vec!["-D", path_str(&data)];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all);
    }

    /// Runs one of the cluster's binaries (as `postgres` when root); panics if it fails.
    fn run(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let output = command
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
        assert!(
            output.status.success(),
            "{} {args:?} failed: {}{}",
            program.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PostgresCluster {
    fn drop(&mut self) {
        if self.running {
            let data = self.data_dir();
            let program = self.bin.join("pg_ctl");
            let mut command = if is_root() {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(&program);
                c
            } else {
                Command::new(&program)
            };
            let _ = command
                .arg("-D")
                .arg(&data)
                .args(["stop", "-m", "immediate", "-w"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    // Else `initdb` and `pg_ctl` from PATH.
    versions.pop().map(|(_, bin)| bin).unwrap_or_default()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn chown_to_postgres(path: &Path) {
    let status = Command::new("chown")
        .arg("postgres:")
        .arg(path)
        .status()
        .expect("run chown");
    assert!(status.success(), "chown postgres: {}", path.display());
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}
