//! `common::db::GroupCommit`: items written while another group commits are written together in
//! one transaction; an item that cannot be written fails alone and the rest of its group commits
//! exactly once; a writer that panics fails its group, not the task.

use std::sync::{Arc, Mutex};

use common::{
    db::{self, GroupCommit, GroupWrite, WriteTxn, group::Pending},
    testing::TestDb,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, SqlErr, Statement};

/// Inserts names into `names` (unique), one multi-row statement per group, and records the size
/// of every group it was given.
struct Names {
    groups: Arc<Mutex<Vec<usize>>>,
}

impl GroupWrite for Names {
    type Item = String;
    type Output = String;

    async fn write(&self, txn: &WriteTxn, items: &[String]) -> Result<Vec<String>, DbErr> {
        self.groups.lock().unwrap().push(items.len());
        assert!(!items.iter().any(|name| name == "panic"), "a writer bug");
        let backend = txn.get_database_backend();
        let placeholders: Vec<String> = (1..=items.len())
            .map(|i| match backend {
                DbBackend::Postgres => format!("(${i})"),
                _ => "(?)".to_owned(),
            })
            .collect();
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "INSERT INTO names (name) VALUES {}",
                placeholders.join(", ")
            ),
            items.iter().map(|name| name.as_str().into()),
        ))
        .await?;
        Ok(items.iter().map(|name| format!("wrote {name}")).collect())
    }
}

async fn names_table() -> (TestDb, DatabaseConnection) {
    let test_db = TestDb::new().await;
    let conn = db::connect(&test_db.url).await.expect("connect");
    conn.execute_unprepared("CREATE TABLE names (name TEXT PRIMARY KEY)")
        .await
        .expect("create table");
    (test_db, conn)
}

/// Holds every writer back until dropped: the write turn on SQLite, a table lock on PostgreSQL.
async fn hold_writers(conn: &DatabaseConnection) -> WriteTxn {
    let blocker = db::begin(conn).await.expect("begin");
    if conn.get_database_backend() == DbBackend::Postgres {
        blocker
            .execute_unprepared("LOCK TABLE names IN EXCLUSIVE MODE")
            .await
            .expect("lock");
    }
    blocker
}

async fn stored_names(conn: &DatabaseConnection) -> Vec<String> {
    let rows = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT name FROM names ORDER BY name",
        ))
        .await
        .expect("read");
    rows.iter()
        .map(|row| row.try_get::<String>("", "name").expect("name"))
        .collect()
}

/// A group-commit task writing `Names`, and the sizes of the groups it wrote.
fn names_writer(
    conn: &DatabaseConnection,
    max_weight: usize,
) -> (GroupCommit<Names>, Arc<Mutex<Vec<usize>>>) {
    let groups = Arc::new(Mutex::new(Vec::new()));
    let names = Names {
        groups: groups.clone(),
    };
    (GroupCommit::spawn(conn.clone(), names, max_weight), groups)
}

/// Queues every name while the writers are held back, then lets them go.
async fn queue_while_held(
    conn: &DatabaseConnection,
    writer: &GroupCommit<Names>,
    names: impl IntoIterator<Item = String>,
) -> Vec<Pending<String>> {
    let blocker = hold_writers(conn).await;
    let mut pending = Vec::new();
    for name in names {
        pending.push(writer.submit(name).await.expect("queued"));
    }
    blocker.rollback().await.expect("release");
    pending
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_queued_while_a_group_commits_are_written_together() {
    let (_test_db, conn) = names_table().await;
    let (writer, groups) = names_writer(&conn, 100);
    let pending = queue_while_held(&conn, &writer, (0..11).map(|i| format!("n{i:02}"))).await;
    for (i, item) in pending.into_iter().enumerate() {
        assert_eq!(
            item.written().await.expect("written"),
            format!("wrote n{i:02}")
        );
    }

    let groups = groups.lock().unwrap().clone();
    assert_eq!(groups.iter().sum::<usize>(), 11, "groups: {groups:?}");
    // The task took the first item (or none) before the writers were released; everything
    // queued behind it went in one transaction.
    assert!(
        groups.len() <= 2,
        "11 items in {} groups: {groups:?}",
        groups.len()
    );
    assert_eq!(stored_names(&conn).await.len(), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_are_bounded_by_weight() {
    let (_test_db, conn) = names_table().await;
    let (writer, groups) = names_writer(&conn, 4);
    let pending = queue_while_held(&conn, &writer, (0..10).map(|i| format!("n{i:02}"))).await;
    for item in pending {
        item.written().await.expect("written");
    }
    let groups = groups.lock().unwrap().clone();
    assert!(groups.iter().all(|&n| n <= 4), "groups: {groups:?}");
    assert_eq!(groups.iter().sum::<usize>(), 10, "groups: {groups:?}");
    assert_eq!(stored_names(&conn).await.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_that_cannot_be_written_fails_alone_and_the_rest_commit_once() {
    let (_test_db, conn) = names_table().await;
    conn.execute_unprepared("INSERT INTO names (name) VALUES ('taken')")
        .await
        .expect("seed");
    let (writer, groups) = names_writer(&conn, 100);
    let names = ["a0", "a1", "taken", "a2", "a2", "a3"].map(str::to_owned);
    let pending = queue_while_held(&conn, &writer, names).await;
    let mut answers = Vec::new();
    for item in pending {
        answers.push(item.written().await);
    }

    let failed: Vec<usize> = answers
        .iter()
        .enumerate()
        .filter(|(_, a)| a.is_err())
        .map(|(i, _)| i)
        .collect();
    // "taken" is in the table already; of the two "a2" the first is written, the second fails.
    assert_eq!(failed, [2, 4], "answers: {answers:?}");
    for i in failed {
        let error = answers[i].as_ref().unwrap_err();
        assert!(
            matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))),
            "item {i}: {error}"
        );
    }
    assert_eq!(
        stored_names(&conn).await,
        ["a0", "a1", "a2", "a3", "taken"],
        "every other item exactly once"
    );
    // A failed group is written again item by item.
    let groups = groups.lock().unwrap().clone();
    assert!(groups.contains(&1), "groups: {groups:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_stops_once_every_handle_is_dropped_after_writing_what_was_queued() {
    let (_test_db, conn) = names_table().await;
    let (writer, _) = names_writer(&conn, 100);
    let blocker = hold_writers(&conn).await;
    let pending = writer.submit("last".to_owned()).await.expect("queued");
    drop(writer);
    blocker.rollback().await.expect("release");
    assert_eq!(pending.written().await.expect("written"), "wrote last");
    assert_eq!(stored_names(&conn).await, ["last"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_panics_fails_its_group_and_the_next_group_is_written() {
    let (_test_db, conn) = names_table().await;
    let (writer, _) = names_writer(&conn, 100);
    let error = writer
        .write("panic".to_owned())
        .await
        .expect_err("the panicking group fails");
    assert!(error.to_string().contains("without an answer"), "{error}");
    assert_eq!(
        writer.write("after".to_owned()).await.expect("written"),
        "wrote after"
    );
    assert_eq!(stored_names(&conn).await, ["after"]);
}
