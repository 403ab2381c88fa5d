//! Transactional batches (`WorkerConfig::batch_transactions`): the entries of one read are applied
//! in one database transaction, each handler in a savepoint. A handler that fails rolls back its
//! own work only and is retried on its own; everything else commits once and is acknowledged
//! after the commit. (A crash in the middle of a batch is in `crash.rs`.)

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{
    Keys,
    db::{self, inbox, migration::RuntimeMigrator, outbox::OutboxNotifier},
    runtime::{BatchTransactions, HandleError, Handler, Message, WorkerConfig},
    testing::{RedisServer, TestDb, unique_prefix, wait_drained},
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use crate::support::{InProcessWorker, effect_counts, pending, publish_n};

/// Writes one `batch_effects` row per event in its transaction; fails (after writing) the first
/// delivery of every event in `fail_once`.
#[derive(Clone)]
struct Effects {
    db: DatabaseConnection,
    fail_once: Arc<Mutex<Vec<String>>>,
    calls: Arc<Mutex<HashMap<String, u32>>>,
}

impl Handler for Effects {
    async fn handle(&self, message: &Message) -> Result<(), HandleError> {
        let event_id = message.envelope.event_id.to_string();
        *self
            .calls
            .lock()
            .unwrap()
            .entry(event_id.clone())
            .or_default() += 1;
        let Some(txn) = inbox::begin_once(&self.db, "g", &message.envelope).await? else {
            return Ok(());
        };
        let sql = match self.db.get_database_backend() {
            DbBackend::Postgres => "INSERT INTO batch_effects (event_id) VALUES ($1)",
            _ => "INSERT INTO batch_effects (event_id) VALUES (?)",
        };
        txn.execute_raw(Statement::from_sql_and_values(
            self.db.get_database_backend(),
            sql,
            [event_id.clone().into()],
        ))
        .await?;
        let fail = {
            let mut fail_once = self.fail_once.lock().unwrap();
            let at = fail_once.iter().position(|id| *id == event_id);
            at.map(|i| fail_once.remove(i)).is_some()
        };
        if fail {
            // Dropped without commit: its savepoint (the row and the inbox record) rolls back.
            return Err(HandleError::retry(anyhow::anyhow!("injected failure")));
        }
        txn.commit().await?;
        Ok(())
    }
}

/// A Redis server with `n` events on `stream`, and a database with the `batch_effects` table.
async fn with_published(stream: &str, n: usize) -> (RedisServer, Keys, TestDb, DatabaseConnection) {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let test_db = TestDb::new().await;
    let db = test_db.connect::<RuntimeMigrator>().await;
    db.execute_unprepared("CREATE TABLE batch_effects (event_id TEXT NOT NULL)")
        .await
        .unwrap();
    publish_n(&redis, &keys, stream, n).await;
    (redis, keys, test_db, db)
}

#[tokio::test]
async fn a_failed_handler_in_a_batch_rolls_back_alone_and_the_rest_commits_once() {
    const N: usize = 150;
    let (redis, keys, _test_db, db) = with_published("batched", N).await;
    let mut conn = redis.connection();
    let event_ids: Vec<String> = crate::support::stream_entries(&mut conn, &keys.stream("batched"))
        .await
        .into_iter()
        .map(|(_, fields)| fields["event_id"].clone())
        .collect();
    assert_eq!(event_ids.len(), N);
    // Three events of the first batch fail once, one of them the very first.
    let failing = vec![
        event_ids[0].clone(),
        event_ids[7].clone(),
        event_ids[40].clone(),
    ];

    let handler = Effects {
        db: db.clone(),
        fail_once: Arc::new(Mutex::new(failing.clone())),
        calls: Arc::default(),
    };
    let mut cfg = WorkerConfig::new(keys.clone(), "g", &["batched"]);
    cfg.retry_base = Duration::from_millis(50);
    cfg.batch_transactions = Some(BatchTransactions {
        db: db.clone(),
        notifier: OutboxNotifier::default(),
    });
    let worker = InProcessWorker::start(&redis, cfg, handler.clone());
    wait_drained(
        &mut conn,
        &keys.stream("batched"),
        "g",
        Duration::from_secs(20),
    )
    .await;

    let effects = effect_counts(&db, "batch_effects").await;
    assert_eq!(effects.len(), N, "every event has its effect");
    assert!(
        effects.values().all(|&n| n == 1),
        "and only one: {effects:?}"
    );
    let calls = handler.calls.lock().unwrap().clone();
    for id in &event_ids {
        let expected = if failing.contains(id) { 2 } else { 1 };
        assert_eq!(calls[id], expected, "handler calls for {id}");
    }
    assert!(handler.fail_once.lock().unwrap().is_empty());
    assert_eq!(
        worker
            .stats
            .retried
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    assert!(
        pending(&mut conn, &keys.stream("batched"), "g")
            .await
            .is_empty()
    );
    worker.stop().await;
    let _ = db::ping(&db).await;
}

async fn rows(db: &DatabaseConnection) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM after_commit_rows",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

/// `db::after_commit` runs its work at once outside a batch; inside one it waits for the batch's
/// commit (a handler's `commit` there only releases a savepoint), so the work sees, on another
/// connection, what the batch wrote.
#[tokio::test]
async fn after_commit_work_runs_once_the_batch_transaction_has_committed() {
    let test_db = TestDb::new().await;
    let db = test_db.connect::<RuntimeMigrator>().await;
    db.execute_unprepared("CREATE TABLE after_commit_rows (n INTEGER NOT NULL)")
        .await
        .unwrap();
    let seen: Arc<Mutex<Vec<i64>>> = Arc::default();
    let record = |seen: &Arc<Mutex<Vec<i64>>>| {
        let (db, seen) = (db.clone(), seen.clone());
        async move {
            let n = rows(&db).await;
            seen.lock().unwrap().push(n);
        }
    };
    let insert = "INSERT INTO after_commit_rows (n) VALUES (1)";

    // Outside a batch: right away.
    let txn = db::begin(&db).await.unwrap();
    txn.execute_unprepared(insert).await.unwrap();
    txn.commit().await.unwrap();
    db::after_commit(record(&seen)).await;
    assert_eq!(*seen.lock().unwrap(), vec![1]);

    // Inside a batch: three handlers each commit their savepoint and defer their work.
    let batch = db::BatchTxn::begin(&db).await.unwrap();
    db::in_batch_transaction(&batch, async {
        for _ in 0..3 {
            let txn = db::begin(&db).await.unwrap();
            txn.execute_unprepared(insert).await.unwrap();
            txn.commit().await.unwrap();
            db::after_commit(record(&seen)).await;
        }
    })
    .await;
    assert_eq!(
        *seen.lock().unwrap(),
        vec![1],
        "nothing deferred runs before the batch commits"
    );
    batch.commit().await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![1, 4, 4, 4],
        "each deferred work ran once, after the commit, and saw all of the batch"
    );
    assert_eq!(rows(&db).await, 4);
}

/// Reads that arrive while a batch transaction runs wait and go into the next one together:
/// 400 entries read 4 at a time are applied in far fewer transactions than the 100 reads, and
/// none holds more than `MAX_PER_TRANSACTION` entries.
#[tokio::test]
async fn reads_that_arrive_during_a_batch_transaction_are_applied_together_in_the_next() {
    const N: usize = 400;
    let (redis, keys, _test_db, db) = with_published("coalesced", N).await;
    let mut conn = redis.connection();
    let handler = Slow(Effects {
        db: db.clone(),
        fail_once: Arc::default(),
        calls: Arc::default(),
    });
    let mut cfg = WorkerConfig::new(keys.clone(), "g", &["coalesced"]);
    cfg.batch = 4;
    cfg.concurrency = 256;
    cfg.batch_transactions = Some(BatchTransactions {
        db: db.clone(),
        notifier: OutboxNotifier::default(),
    });
    let worker = InProcessWorker::start(&redis, cfg, handler);
    wait_drained(
        &mut conn,
        &keys.stream("coalesced"),
        "g",
        Duration::from_secs(30),
    )
    .await;
    let effects = effect_counts(&db, "batch_effects").await;
    assert_eq!(effects.len(), N);
    assert!(effects.values().all(|&n| n == 1), "{effects:?}");
    let transactions = common::runtime::WorkerStats::get(&worker.stats.batch_transactions);
    let most = common::runtime::batch::MAX_PER_TRANSACTION;
    assert!(
        N.div_ceil(most) as u64 <= transactions && transactions <= (N / 4 / 2) as u64,
        "{transactions} batch transactions for {} reads of 4 (at most {most} entries each)",
        N / 4
    );
    worker.stop().await;
}

/// [`Effects`], taking 2 ms inside its transaction.
#[derive(Clone)]
struct Slow(Effects);

impl Handler for Slow {
    async fn handle(&self, message: &Message) -> Result<(), HandleError> {
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.0.handle(message).await
    }
}
