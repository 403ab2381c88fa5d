//! Two replicas of a worker with transactional batches on one PostgreSQL database, whose
//! handlers lock the same rows in different orders (as two payment replicas lock shoppers'
//! wallets): their batches deadlock. PostgreSQL aborts one side; the runtime must roll that
//! batch back whole and apply its entries one by one, without counting the conflict as a failed
//! delivery, so that every event is applied exactly once and nothing is dead-lettered.
//!
//! Always on PostgreSQL (a private server, `PostgresCluster`): SQLite has one writer per file,
//! where transactions queue instead of deadlocking.

use std::time::Duration;

use common::{
    Keys,
    db::{inbox, migration::RuntimeMigrator, outbox::OutboxNotifier},
    runtime::{BatchTransactions, HandleError, Handler, Message, WorkerConfig, WorkerStats},
    testing::{PostgresCluster, RedisServer, TestDb, unique_prefix, wait_drained, xlen},
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use crate::support::{InProcessWorker, effect_counts, pending, publish_n};

const ACCOUNTS: u64 = 6;

/// Adds 1 to two accounts chosen by the event's `n`, in an order that differs between events,
/// then records the event. A short pause between the two updates widens the window in which
/// another replica's batch takes the second row.
#[derive(Clone)]
struct Transfers {
    db: DatabaseConnection,
}

impl Handler for Transfers {
    async fn handle(&self, message: &Message) -> Result<(), HandleError> {
        let n = serde_json::from_str::<serde_json::Value>(message.envelope.data.get())
            .ok()
            .and_then(|v| v["n"].as_u64())
            .ok_or_else(|| HandleError::DeadLetter(anyhow::anyhow!("no n")))?;
        let first = n % ACCOUNTS;
        let second = (first + 1 + (n / ACCOUNTS) % (ACCOUNTS - 1)) % ACCOUNTS;
        let Some(txn) = inbox::begin_once(&self.db, "g", &message.envelope).await? else {
            return Ok(());
        };
        for account in [first, second] {
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "UPDATE accounts SET n = n + 1 WHERE id = $1",
                [(account as i64).into()],
            ))
            .await?;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO effects (event_id) VALUES ($1)",
            [message.envelope.event_id.to_string().into()],
        ))
        .await?;
        txn.commit().await?;
        Ok(())
    }
}

fn config(keys: &Keys, db: &DatabaseConnection) -> WorkerConfig {
    let mut cfg = WorkerConfig::new(keys.clone(), "g", &["transfers"]);
    cfg.retry_base = Duration::from_millis(20);
    cfg.retry_max = Duration::from_millis(200);
    // Without the rollback-and-apply-singly path, deadlocked entries burn their deliveries and
    // are dead-lettered after three.
    cfg.max_deliveries = 3;
    cfg.processing_timeout = Duration::from_secs(5);
    cfg.batch_transactions = Some(BatchTransactions {
        db: db.clone(),
        notifier: OutboxNotifier::default(),
    });
    cfg
}

#[tokio::test]
async fn replicas_whose_batches_deadlock_apply_every_event_once_and_dead_letter_none() {
    const N: usize = 800;
    let server = PostgresCluster::start();
    let test_db = TestDb::on_postgres(&server.url()).await;
    let db = test_db.connect::<RuntimeMigrator>().await;
    db.execute_unprepared("CREATE TABLE accounts (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)")
        .await
        .unwrap();
    db.execute_unprepared("CREATE TABLE effects (event_id TEXT NOT NULL)")
        .await
        .unwrap();
    db.execute_unprepared(&format!(
        "INSERT INTO accounts SELECT g, 0 FROM generate_series(0, {}) g",
        ACCOUNTS - 1
    ))
    .await
    .unwrap();
    // Fast deadlock detection: the test is about what happens after, not about waiting 1 s.
    db.execute_unprepared("ALTER SYSTEM SET deadlock_timeout = '50ms'")
        .await
        .unwrap();
    db.execute_unprepared("SELECT pg_reload_conf()")
        .await
        .unwrap();

    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    publish_n(&redis, &keys, "transfers", N).await;
    let replicas = [
        InProcessWorker::start(&redis, config(&keys, &db), Transfers { db: db.clone() }),
        InProcessWorker::start(&redis, config(&keys, &db), Transfers { db: db.clone() }),
    ];
    let mut conn = redis.connection();
    wait_drained(
        &mut conn,
        &keys.stream("transfers"),
        "g",
        Duration::from_secs(120),
    )
    .await;

    let conflicts: u64 = replicas
        .iter()
        .map(|w| WorkerStats::get(&w.stats.batch_lock_conflicts))
        .sum();
    let dead_lettered: u64 = replicas
        .iter()
        .map(|w| WorkerStats::get(&w.stats.dead_lettered))
        .sum();
    for worker in replicas {
        worker.stop().await;
    }
    assert_eq!(dead_lettered, 0, "a lock conflict is not a poison message");
    assert_eq!(xlen(&mut conn, &keys.dead_letter("transfers")).await, 0);
    assert!(
        pending(&mut conn, &keys.stream("transfers"), "g")
            .await
            .is_empty()
    );
    let effects = effect_counts(&db, "effects").await;
    assert_eq!(effects.len(), N, "every event applied");
    assert!(effects.values().all(|&n| n == 1), "and only once");
    let total = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT SUM(n)::BIGINT AS total FROM accounts",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "total")
        .unwrap();
    assert_eq!(total, 2 * N as i64, "two units moved per event, no more");
    // Last: the scenario really happened (else the checks above prove nothing).
    assert!(
        conflicts > 0,
        "the replicas' batches never met a lock conflict: the test did not exercise it"
    );
}
