//! `common::db::begin`: concurrent write transactions of one process on one database all commit.
//!
//! Each transaction reads a counter and writes it back plus one — the pattern that, on SQLite in
//! WAL mode with plain deferred transactions, fails with `SQLITE_BUSY` as soon as another writer
//! commits between the read and the write. With the write turn (and `BEGIN IMMEDIATE`) every one
//! commits and no increment is lost; on PostgreSQL the row lock (`FOR UPDATE`) does the same.

use common::{db, testing::TestDb};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_read_then_write_transactions_all_commit_and_lose_nothing() {
    let test_db = TestDb::new().await;
    let conn = db::connect(&test_db.url).await.expect("connect");
    let backend = conn.get_database_backend();
    conn.execute_unprepared("CREATE TABLE counter (id INTEGER PRIMARY KEY, n BIGINT NOT NULL)")
        .await
        .expect("create table");
    conn.execute_unprepared("INSERT INTO counter (id, n) VALUES (1, 0)")
        .await
        .expect("seed");
    let lock = match backend {
        DbBackend::Postgres => " FOR UPDATE",
        _ => "",
    };

    const TASKS: i64 = 64;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let conn = conn.clone();
        set.spawn(async move {
            let txn = db::begin(&conn).await?;
            let row = txn
                .query_one_raw(Statement::from_string(
                    backend,
                    format!("SELECT n FROM counter WHERE id = 1{lock}"),
                ))
                .await?
                .expect("the counter row");
            let n: i64 = row.try_get("", "n")?;
            // Let the other tasks run between the read and the write.
            tokio::task::yield_now().await;
            txn.execute_raw(Statement::from_sql_and_values(
                backend,
                match backend {
                    DbBackend::Postgres => "UPDATE counter SET n = $1 WHERE id = 1",
                    _ => "UPDATE counter SET n = ? WHERE id = 1",
                },
                [(n + 1).into()],
            ))
            .await?;
            txn.commit().await
        });
    }
    let mut failures = Vec::new();
    while let Some(result) = set.join_next().await {
        if let Err(e) = result.expect("task panicked") {
            failures.push(e.to_string());
        }
    }
    assert!(failures.is_empty(), "transactions failed: {failures:?}");
    let row = conn
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT n FROM counter WHERE id = 1",
        ))
        .await
        .expect("read")
        .expect("row");
    let n: i64 = row.try_get("", "n").expect("n");
    assert_eq!(n, TASKS, "every increment applied exactly once");
}
