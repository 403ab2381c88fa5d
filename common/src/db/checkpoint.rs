//! SQLite checkpoints, in the background instead of inside commits (see `super::connect`), and
//! a WAL that stays bounded under steady traffic.
//!
//! A `PASSIVE` checkpoint copies the WAL back into the database file without waiting for anyone,
//! but the WAL only *starts over* when a writer finds it completely copied and no reader still
//! using it. Under steady traffic — a writer that never pauses, readers whose snapshots always
//! overlap — that moment never comes, and the WAL file grows with every commit (the store's
//! reached 5 GB in 150 s of orders; `common/tests/it/write.rs` reproduces it in seconds). So once
//! the WAL passes [`WAL_LIMIT_PAGES`], a `TRUNCATE` checkpoint on a connection of its own waits
//! a bounded moment ([`TRUNCATE_WAIT`]) for the readers, copies the rest and cuts the file to
//! zero. Writers wait during that moment only; if readers outlast it, the next tick tries again
//! with twice the wait, up to [`TRUNCATE_WAIT_MAX`]: a machine starved of CPU stretches every
//! reader's snapshot, and a fixed quarter second then never finds them gone (a 45-minute soak
//! saw the store's WAL held back for a minute, to 119 MB). The longest wait stays well below
//! the writers' own busy timeout, so a writer held back by it waits and never fails.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};

/// How often [`checkpoint_sqlite`] copies the WAL back into the database file.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// WAL size (in pages of 4 KiB: 64 MiB) past which the WAL is truncated.
pub const WAL_LIMIT_PAGES: i64 = 16_384;

/// `journal_size_limit` of every SQLite connection, in bytes: a WAL that starts over is cut
/// back to this.
pub(super) const JOURNAL_SIZE_LIMIT: &str = "67108864";

/// How long a truncating checkpoint first waits for readers (and holds writers back).
const TRUNCATE_WAIT: Duration = Duration::from_millis(250);

/// The longest a truncating checkpoint waits, after readers outlasted the shorter waits.
pub const TRUNCATE_WAIT_MAX: Duration = Duration::from_secs(2);
const _: () =
    assert!(TRUNCATE_WAIT_MAX.as_millis() < super::outage::SQLITE_BUSY_TIMEOUT.as_millis());

/// The busy timeout every pooled connection has (`super::connect`:
/// `outage::SQLITE_BUSY_TIMEOUT`, 5 s), restored after a truncation.
const BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 5000";

/// SQLite: every [`CHECKPOINT_EVERY`] until `shutdown`, a `PASSIVE` checkpoint on a pooled
/// connection, outside the write turn; past [`WAL_LIMIT_PAGES`] a truncating one. On PostgreSQL
/// it only waits for `shutdown`.
pub async fn checkpoint_sqlite(
    db: DatabaseConnection,
    shutdown: tokio_util::sync::CancellationToken,
) {
    checkpoint_sqlite_with(db, WAL_LIMIT_PAGES, shutdown).await
}

/// [`checkpoint_sqlite`] with the WAL limit in pages (tests set it low).
pub async fn checkpoint_sqlite_with(
    db: DatabaseConnection,
    limit_pages: i64,
    shutdown: tokio_util::sync::CancellationToken,
) {
    if db.get_database_backend() != DbBackend::Sqlite {
        shutdown.cancelled().await;
        return;
    }
    let mut failures = 0u32;
    let mut wait = TRUNCATE_WAIT;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECKPOINT_EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
        let outcome = match passive(&db).await {
            Ok(wal_pages) if wal_pages >= limit_pages => truncate(&db, wait).await.map(|done| {
                if done {
                    metrics::counter!("mesh_sqlite_wal_truncations_total").increment(1);
                    wait = TRUNCATE_WAIT;
                } else {
                    tracing::debug!(
                        wal_pages,
                        wait_ms = wait.as_millis() as u64,
                        "readers outlasted the truncating checkpoint; next tick waits longer"
                    );
                    wait = (wait * 2).min(TRUNCATE_WAIT_MAX);
                }
            }),
            Ok(_) => Ok(()),
            Err(error) => Err(error),
        };
        match outcome {
            Ok(()) => failures = 0,
            Err(error) => {
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(%error, failures, "SQLite checkpoint failed; the WAL keeps growing until one succeeds");
                }
            }
        }
    }
}

/// A `PASSIVE` checkpoint; returns the WAL's size in pages.
async fn passive(db: &DatabaseConnection) -> Result<i64, DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA wal_checkpoint(PASSIVE)",
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("wal_checkpoint returned no row".into()))?;
    row.try_get_by_index(1)
}

/// A `TRUNCATE` checkpoint on one pooled connection whose busy timeout is `wait` meanwhile;
/// `true` when the WAL was truncated.
async fn truncate(db: &DatabaseConnection, wait: Duration) -> Result<bool, DbErr> {
    use sea_orm::sqlx::{self, Row as _};
    let sql = |e: sqlx::Error| DbErr::Custom(format!("truncating checkpoint: {e}"));
    let mut conn = db
        .get_sqlite_connection_pool()
        .acquire()
        .await
        .map_err(sql)?;
    // Only an integer goes into this statement.
    let busy_timeout = format!("PRAGMA busy_timeout = {}", wait.as_millis());
    sqlx::query(sqlx::AssertSqlSafe(busy_timeout))
        .execute(&mut *conn)
        .await
        .map_err(sql)?;
    let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_one(&mut *conn)
        .await;
    // Back to the pool's busy timeout whatever happened, or this connection would give up on
    // the write lock after a quarter second from now on.
    let restored = sqlx::query(BUSY_TIMEOUT).execute(&mut *conn).await;
    if restored.is_err() {
        // A connection we cannot restore must not go back to the pool.
        conn.detach();
    }
    let busy: i64 = row.map_err(sql)?.try_get(0).map_err(sql)?;
    Ok(busy == 0)
}
