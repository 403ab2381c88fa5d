//! Write transactions: [`begin`] and [`WriteTxn`].
//!
//! SQLite has one writer at a time per file. Left to itself, a connection that finds the write
//! lock taken waits in SQLite's busy handler, which *sleeps* (1, 2, 5, 10, … ms) and retries: with
//! a few dozen requests and handlers writing at once, most of their time goes to those sleeps,
//! the CPU idles, and latency climbs to a hundred milliseconds and more. So on SQLite every write
//! transaction of this process first takes its turn on an async FIFO mutex of that database
//! file, then begins with `BEGIN IMMEDIATE`: writers of one process queue without sleeping, in
//! arrival order, and the busy handler is left to arbitrate only between processes (two replicas
//! on one file, a migration). PostgreSQL needs no turn: [`begin`] is a plain `BEGIN` there.
//!
//! Rules for callers: begin write transactions with [`begin`] (or `inbox::begin_once`), read
//! outside them where possible, and never begin a second one while holding one (on SQLite that
//! would wait for itself).
//!
//! **Batches.** A worker may apply a whole batch of entries in one transaction
//! ([`in_batch_transaction`]), and the batch commits once. Every [`begin`] inside that scope
//! joins the batch's transaction in one of two ways, chosen when the batch begins:
//! - *joined* ([`BatchTxn::begin`], the first try): the handler works in the batch's transaction
//!   itself, with no statement of its own; its `commit` does nothing, and a `rollback` (or a
//!   transaction dropped before its commit) marks the batch [`BatchTxn::abandoned`]. The runtime
//!   then rolls the whole batch back and applies it again with savepoints. Two statements fewer
//!   per event (`SAVEPOINT`, `RELEASE`) on the path every event takes, and more: a handler's
//!   inbox record (`inbox::begin_once`), its outbox rows and other rows nothing reads back
//!   (`super::deferred::insert_deferrable`) are not inserted at once but left to the batch,
//!   which writes them together, one statement per table, just before it commits
//!   ([`BatchTxn::write_deferred_tables`], `inbox::write_deferred`). An event found in the
//!   inbox then (applied before) sends the whole batch to the second way, where each handler's
//!   own insert finds it;
//! - *savepoints* ([`BatchTxn::begin_with_savepoints`]): each [`begin`] is a `SAVEPOINT`, a
//!   handler's `commit` releases it and a failed handler rolls back only its own work.
//!
//! On SQLite batches turn a few hundred small write transactions a second (each a turn, a
//! `BEGIN IMMEDIATE`, WAL frames and a `COMMIT`) into a few dozen. Nothing a handler did is
//! durable until [`BatchTxn::commit`] returns, so the worker acknowledges only after it, and work
//! that must wait for durability (invalidating a cache the next read must miss) goes through
//! [`after_commit`].

use std::{
    collections::HashMap,
    ops::Deref,
    path::PathBuf,
    sync::{
        Arc, LazyLock, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use futures::future::BoxFuture;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};
use tokio::sync::OwnedMutexGuard;

use super::{
    deferred::{Deferred, WriteConnection},
    outage::OUTAGE_PREFIX,
};

/// How long a writer waits for its turn before giving up with an outage error: twice the busy
/// timeout, so that a turn is only missed when the writer before it could not get the file's
/// lock either.
const TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The write turn of each SQLite file this process has open.
static TURNS: LazyLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Default::default);

fn turn_of(db: &DatabaseConnection) -> Option<Arc<tokio::sync::Mutex<()>>> {
    if db.get_database_backend() != DbBackend::Sqlite {
        return None;
    }
    let file = db
        .get_sqlite_connection_pool()
        .connect_options()
        .get_filename()
        .to_path_buf();
    let mut turns = TURNS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    Some(turns.entry(file).or_default().clone())
}

tokio::task_local! {
    /// The batch transaction of the running task, if it is inside [`in_batch_transaction`].
    static BATCH: BatchScope;
}

/// Work to run once the batch's transaction has ended (see [`after_commit`]), with the key it
/// was deferred under, if any ([`after_commit_once`]).
type AfterCommit = Arc<Mutex<Vec<(Option<&'static str>, BoxFuture<'static, ()>)>>>;

#[derive(Clone)]
struct BatchScope {
    txn: Arc<DatabaseTransaction>,
    after_commit: AfterCommit,
    /// The first savepoint of the batch that could not begin. sqlx (0.9, PostgreSQL) then
    /// counts one transaction level too few: its failed `SAVEPOINT` undoes a level it never
    /// added, and the batch's `COMMIT` becomes a no-op that reports success while nothing is
    /// committed (the handlers that succeeded would be acknowledged, their effects lost: seen
    /// when PostgreSQL restarted under the chaos drill). Such a batch is never committed.
    failed_begin: Arc<Mutex<Option<DbErr>>>,
    /// `true`: every [`begin`] is a savepoint; `false`: handlers join the transaction itself.
    savepoints: bool,
    /// A joined handler rolled back, or dropped its transaction before committing it: what it
    /// wrote cannot be undone alone, so the batch must not commit (see the module docs).
    abandoned: Arc<AtomicBool>,
    /// What joined handlers left to the batch, not yet written.
    deferred: Arc<Deferred>,
}

/// A write transaction shared by the handlers of one batch (see the module docs).
pub struct BatchTxn {
    scope: BatchScope,
    _turn: Option<OwnedMutexGuard<()>>,
}

impl BatchTxn {
    /// Begins the batch's transaction on `db`; the handlers join it without savepoints.
    pub async fn begin(db: &DatabaseConnection) -> Result<Self, DbErr> {
        Self::begin_scoped(db, false).await
    }

    /// Begins the batch's transaction on `db`; each handler's [`begin`] is a savepoint.
    pub async fn begin_with_savepoints(db: &DatabaseConnection) -> Result<Self, DbErr> {
        Self::begin_scoped(db, true).await
    }

    async fn begin_scoped(db: &DatabaseConnection, savepoints: bool) -> Result<Self, DbErr> {
        let WriteTxn { txn, _turn } = begin(db).await?;
        let Txn::Own(txn) = txn else {
            return Err(DbErr::Custom(
                "a batch transaction cannot begin inside another batch".into(),
            ));
        };
        Ok(Self {
            scope: BatchScope {
                txn: Arc::new(txn),
                after_commit: AfterCommit::default(),
                failed_begin: Arc::default(),
                savepoints,
                abandoned: Arc::default(),
                deferred: Arc::default(),
            },
            _turn,
        })
    }

    /// Whether a handler that joined the transaction rolled back or left its work unfinished:
    /// the batch must then be rolled back, not committed.
    pub fn abandoned(&self) -> bool {
        self.scope.abandoned.load(Ordering::Acquire)
    }

    /// Writes the rows its joined handlers left to the batch, one statement per table; their
    /// inbox records are written by `inbox::write_deferred`. [`Self::commit`] refuses to commit
    /// a batch with either left unwritten.
    pub async fn write_deferred_tables(&self) -> Result<(), DbErr> {
        self.scope.deferred.write_tables(&self.scope.txn).await
    }

    /// The inbox records its joined handlers deferred, taken to be written
    /// (`inbox::write_deferred`) in the batch's transaction, [`Self::connection`].
    pub(crate) fn take_deferred_inbox(&self) -> Vec<(String, String)> {
        self.scope.deferred.take_inbox()
    }

    /// The batch's transaction itself, for the statements of the batch as a whole.
    pub(crate) fn connection(&self) -> &DatabaseTransaction {
        &self.scope.txn
    }

    /// Commits everything the batch's handlers committed to their savepoints, then runs what
    /// they deferred with [`after_commit`] (also when the commit failed: deferred work is the
    /// kind that is harmless when nothing changed, like a cache invalidation).
    pub async fn commit(self) -> Result<(), DbErr> {
        let Self { scope, _turn } = self;
        let BatchScope {
            txn,
            after_commit,
            failed_begin,
            abandoned,
            deferred,
            ..
        } = scope;
        let unwritten = deferred.unwritten();
        let failed_begin = failed_begin
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let committed = match Arc::try_unwrap(txn) {
            // Dropped: rolled back (see `BatchScope::failed_begin`).
            Ok(_) if let Some(error) = failed_begin => Err(error),
            Ok(_) if abandoned.load(Ordering::Acquire) => Err(DbErr::Custom(
                "a handler rolled back inside the batch transaction; rolled back".into(),
            )),
            // Committing would mark those events applied by nothing.
            Ok(_) if unwritten > 0 => Err(DbErr::Custom(format!(
                "{unwritten} deferred inbox records or tables were not written; rolled back"
            ))),
            Ok(txn) => txn.commit().await,
            // A handler kept its transaction past its own end (a spawned task): its work may be
            // half done, so none of the batch is committed.
            Err(_) => Err(DbErr::Custom(
                "a handler still holds the batch transaction; rolled back".into(),
            )),
        };
        drop(_turn);
        let deferred = std::mem::take(
            &mut *after_commit
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for (_, work) in deferred {
            work.await;
        }
        committed
    }
}

impl BatchTxn {
    /// Rolls the whole batch back (releasing every lock it holds); what its handlers deferred
    /// with [`after_commit`] is dropped, as nothing changed.
    pub async fn roll_back(self) -> Result<(), DbErr> {
        let Self { scope, _turn } = self;
        match Arc::try_unwrap(scope.txn) {
            Ok(txn) => txn.rollback().await,
            // A handler kept its transaction past its own end: dropping ours rolls back once
            // the last holder lets go.
            Err(_) => Ok(()),
        }
    }
}

/// Whether the running task is inside [`in_batch_transaction`].
pub(crate) fn in_batch_scope() -> bool {
    BATCH.try_with(|_| ()).is_ok()
}

/// Runs `work` with every [`begin`] in it (on this task) joining `batch` as a savepoint.
pub async fn in_batch_transaction<F: std::future::Future>(batch: &BatchTxn, work: F) -> F::Output {
    BATCH.scope(batch.scope.clone(), work).await
}

/// Runs `work` once what the caller has committed is durable: right away, unless the caller is
/// inside [`in_batch_transaction`], whose `commit` only released a savepoint; then after the
/// batch's transaction ends. For effects outside the database that must not be seen before the
/// data is, such as invalidating a cache.
pub async fn after_commit(work: impl std::future::Future<Output = ()> + Send + 'static) {
    defer(None, work).await;
}

/// As [`after_commit`], but of the work deferred under `key` in one batch only the first runs:
/// for work one run of which covers the whole batch (bumping a cache's version once for all
/// the batch's writes instead of once per handler).
pub async fn after_commit_once(
    key: &'static str,
    work: impl std::future::Future<Output = ()> + Send + 'static,
) {
    defer(Some(key), work).await;
}

async fn defer(
    key: Option<&'static str>,
    work: impl std::future::Future<Output = ()> + Send + 'static,
) {
    match BATCH.try_with(|scope| scope.after_commit.clone()) {
        Ok(deferred) => {
            let mut deferred = deferred
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if key.is_none() || !deferred.iter().any(|(k, _)| *k == key) {
                deferred.push((key, Box::pin(work)));
            }
        }
        Err(_) => work.await,
    }
}

/// Begins a write transaction on `db` (see the module docs).
pub async fn begin(db: &DatabaseConnection) -> Result<WriteTxn, DbErr> {
    if let Ok(scope) = BATCH.try_with(|scope| scope.clone()) {
        if !scope.savepoints {
            return Ok(WriteTxn {
                txn: Txn::Joined(Joined {
                    txn: scope.txn,
                    abandoned: scope.abandoned,
                    deferred: scope.deferred,
                    finished: false,
                }),
                _turn: None,
            });
        }
        // Inside a batch: a savepoint of the batch's transaction, which already holds the turn.
        use sea_orm::TransactionTrait as _;
        return match scope.txn.begin().await {
            Ok(txn) => Ok(WriteTxn {
                txn: Txn::Own(txn),
                _turn: None,
            }),
            Err(error) => {
                scope
                    .failed_begin
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .get_or_insert_with(|| error.clone());
                Err(error)
            }
        };
    }
    let Some(turn) = turn_of(db) else {
        return Ok(WriteTxn {
            txn: Txn::Own(db.begin().await?),
            _turn: None,
        });
    };
    // Bounded: while another process holds the file's write lock, every writer of this process
    // would otherwise queue here for its predecessors' busy timeouts, one after the other.
    let turn = tokio::time::timeout(TURN_WAIT, turn.lock_owned())
        .await
        .map_err(|_| {
            DbErr::Custom(format!(
                "{OUTAGE_PREFIX}no write turn on the SQLite file within {TURN_WAIT:?}"
            ))
        })?;
    let txn = db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        })
        .await?;
    Ok(WriteTxn {
        txn: Txn::Own(txn),
        _turn: Some(turn),
    })
}

/// A write transaction that holds this process's write turn (SQLite) until it commits, rolls
/// back or is dropped. Use it wherever a connection is expected; it derefs to the
/// [`DatabaseTransaction`] for the rest (savepoints with `begin`).
pub struct WriteTxn {
    // Declared first: dropped (rolled back) before the turn is released.
    txn: Txn,
    _turn: Option<OwnedMutexGuard<()>>,
}

enum Txn {
    /// A transaction (or savepoint) of its own.
    Own(DatabaseTransaction),
    /// The batch's transaction itself (see the module docs).
    Joined(Joined),
}

/// A handler's share of a batch transaction it joined without a savepoint.
struct Joined {
    txn: Arc<DatabaseTransaction>,
    abandoned: Arc<AtomicBool>,
    deferred: Arc<Deferred>,
    /// Committed, or released with nothing written.
    finished: bool,
}

impl Joined {
    /// Its work is done (committed to the batch, or nothing to undo): no reason to abandon.
    fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for Joined {
    fn drop(&mut self) {
        if !self.finished {
            self.abandoned.store(true, Ordering::Release);
        }
    }
}

impl WriteTxn {
    /// Commits; inside a batch, makes the work part of the batch's commit.
    pub async fn commit(self) -> Result<(), DbErr> {
        match self.txn {
            Txn::Own(txn) => txn.commit().await,
            Txn::Joined(joined) => {
                joined.finish();
                Ok(())
            }
        }
    }

    /// Rolls back; inside a batch joined without a savepoint, the whole batch will be rolled
    /// back and applied again with savepoints.
    pub async fn rollback(self) -> Result<(), DbErr> {
        match self.txn {
            Txn::Own(txn) => txn.rollback().await,
            Txn::Joined(joined) => {
                drop(joined);
                Ok(())
            }
        }
    }

    /// Inside a batch joined without a savepoint, leaves the inbox record of `event_id` for
    /// `group` to the batch (see the module docs): `Some(true)`, or `Some(false)` if another
    /// handler of the batch recorded that event already. `None` elsewhere: the caller inserts
    /// the record itself.
    pub(crate) fn defer_inbox_record(&self, group: &str, event_id: &str) -> Option<bool> {
        self.deferred()
            .map(|deferred| deferred.record_inbox(group, event_id))
    }

    /// Ends a transaction in which nothing was changed (an insert that found its row already
    /// there, say): a rollback of its own, but no reason to roll back a batch it joined.
    pub async fn release_unchanged(self) -> Result<(), DbErr> {
        match self.txn {
            Txn::Own(txn) => txn.rollback().await,
            Txn::Joined(joined) => {
                joined.finish();
                Ok(())
            }
        }
    }
}

impl Deref for WriteTxn {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        match &self.txn {
            Txn::Own(txn) => txn,
            Txn::Joined(joined) => &joined.txn,
        }
    }
}

impl WriteConnection for WriteTxn {
    fn deferred(&self) -> Option<&Deferred> {
        match &self.txn {
            Txn::Joined(joined) => Some(&joined.deferred),
            Txn::Own(_) => None,
        }
    }
}

impl std::fmt::Debug for WriteTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTxn")
            .field("joined", &matches!(self.txn, Txn::Joined(_)))
            .field("turn", &self._turn.is_some())
            .finish()
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for WriteTxn {
    fn get_database_backend(&self) -> DbBackend {
        (**self).get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        (**self).execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        (**self).execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        (**self).query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        (**self).query_all_raw(stmt).await
    }

    fn support_returning(&self) -> bool {
        (**self).support_returning()
    }
}
