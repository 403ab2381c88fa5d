//! The built `warehouse` executable as a real process: it exits 0 on SIGTERM and SIGINT (what
//! `docker compose stop` and Ctrl-C send), and `migrate` migrates and exits.

use std::{process::Stdio, time::Duration};

use common::testing::{RedisServer, TestDb, free_port, service_command, unique_prefix, wait_ready};
use sea_orm_migration::MigratorTrait;
use tokio::process::Command;

/// The binary with a clean environment for the mesh settings of one test.
fn warehouse(redis: &RedisServer, db: &TestDb, data: &tempfile::TempDir) -> Command {
    let mut cmd = Command::from(service_command(
        env!("CARGO_BIN_EXE_warehouse"),
        &redis.url(),
        &db.url,
        data.path(),
        &unique_prefix(),
    ));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    cmd
}

#[tokio::test]
async fn exits_with_code_0_on_sigterm_and_sigint() {
    let redis = RedisServer::start();
    for signal in ["TERM", "INT"] {
        let db = TestDb::new().await;
        let data = tempfile::tempdir().expect("data dir");
        let port = free_port();
        let mut child = warehouse(&redis, &db, &data)
            .env("MESH_LISTEN", format!("127.0.0.1:{port}"))
            .spawn()
            .expect("spawn warehouse");

        let base_url = format!("http://127.0.0.1:{port}");
        wait_ready(&reqwest::Client::new(), &base_url, Duration::from_secs(20)).await;

        let pid = child.id().expect("child pid").to_string();
        let sent = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} {pid}");

        let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .unwrap_or_else(|_| panic!("no exit within 10 s of SIG{signal}"))
            .expect("wait for warehouse");
        assert_eq!(status.code(), Some(0), "exit status after SIG{signal}");
    }
}

#[tokio::test]
async fn migrate_applies_migrations_and_exits() {
    let redis = RedisServer::start();
    let db = TestDb::new().await;
    let data = tempfile::tempdir().expect("data dir");

    let status = tokio::time::timeout(
        Duration::from_secs(30),
        warehouse(&redis, &db, &data).arg("migrate").status(),
    )
    .await
    .expect("migrate finishes within 30 s")
    .expect("run warehouse migrate");
    assert!(status.success(), "warehouse migrate exited with {status}");

    let conn = common::db::connect(&db.url).await.expect("connect");
    let pending = warehouse::Migrator::get_pending_migrations(&conn)
        .await
        .expect("read migration state");
    assert!(
        pending.is_empty(),
        "{} migrations still pending",
        pending.len()
    );
}
