//! Service binaries as real processes: the environment a deployment gives them, a handle that
//! kills what a failing test leaves running, and where `cargo` built them.

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    process::{Child, Command},
};

/// A command running `bin` with the settings every service reads from its environment, as a
/// deployment sets them: its Redis server, database, data dir and key prefix (and quiet logs).
/// Callers add the listen address, their own settings and the standard streams.
pub fn service_command(
    bin: impl AsRef<OsStr>,
    redis_url: &str,
    database_url: &str,
    data_dir: &Path,
    prefix: &str,
) -> Command {
    let mut command = Command::new(bin);
    command
        .env("REDIS_URL", redis_url)
        .env("DATABASE_URL", database_url)
        .env("MESH_DATA_DIR", data_dir)
        .env("MESH_STREAM_PREFIX", prefix)
        .env("RUST_LOG", "warn");
    command
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
