//! Persistence shared by every service: connecting (SQLite in WAL mode by default, PostgreSQL with
//! `DATABASE_URL=postgres://…`), write transactions (`write`), the runtime's own tables (`inbox`
//! and `outbox`) and their migrations, and the `relay` that publishes the outbox.

mod checkpoint;
mod deferred;
pub mod group;
pub mod inbox;
pub mod migration;
pub mod outage;
pub mod outbox;
mod probe;
pub mod relay;
mod write;

pub use checkpoint::{
    CHECKPOINT_EVERY, TRUNCATE_WAIT_MAX, WAL_LIMIT_PAGES, checkpoint_sqlite, checkpoint_sqlite_with,
};

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr};

pub use deferred::{WriteConnection, insert_deferrable};
pub use group::{GroupCommit, GroupWrite};
pub use probe::first_existing;
pub use write::{BatchTxn, WriteTxn, after_commit, after_commit_once, begin, in_batch_transaction};

/// Prepared statements each SQLite connection keeps (sqlx's default is 100). Multi-row
/// statements — a batch's deferred rows, a group's orders — differ by their number of rows, so
/// under load each connection's cache filled up with such one-off programs and kept them for good:
/// the store's eight connections held ~1.7 MB each after a load, ~0.7 MB with this bound, and the
/// orders benchmark's throughput did not change (docs/benchmarks.md, "2026-12-07 (fifth
/// session): what the store keeps after a load").
const SQLITE_STATEMENT_CACHE: usize = 16;

/// Page cache of each SQLite connection, in KiB (SQLite's default is 2,000). A connection that
/// had read through a table (housekeeping) kept a full 2 MB cache for good, in a malloc arena of
/// its own. In WAL mode a connection's cache is emptied anyway whenever
/// another connection wrote since its last transaction, which in a busy pool is most of the time,
/// so a large one bought little (docs/benchmarks.md, "2026-12-07 (seventh session)").
pub const SQLITE_PAGE_CACHE_KIB: u32 = 256;

/// Connects to `url`. SQLite files are created if missing, opened in WAL mode with a busy timeout
/// so concurrent handlers queue for the write lock instead of failing, and with automatic
/// checkpoints off: SQLite would run them inside the commit that crosses 1,000 WAL pages, while
/// that transaction still holds the file's one writer, stalling every request behind it (they made
/// the order benchmark's latency tail: `docs/benchmarks.md`). A
/// service runs [`checkpoint_sqlite`] beside its other parts instead.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    if let Some(path) = sqlite_path(url)
        && let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| DbErr::Custom(format!("create {dir:?}: {e}")))?;
    }
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .connect_timeout(outage::ACQUIRE_TIMEOUT)
        // Bounded, so that while the database is away a request or a handler fails fast with an
        // outage error (503, a retry that does not count) instead of hanging (`outage.rs`).
        .acquire_timeout(outage::ACQUIRE_TIMEOUT);
    if url.starts_with("sqlite:") {
        options.max_connections(8).map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(outage::SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true)
                .pragma("wal_autocheckpoint", "0")
                // When the WAL starts over, its file is cut back to this size (it would keep
                // its largest size for good otherwise).
                .pragma("journal_size_limit", checkpoint::JOURNAL_SIZE_LIMIT)
                .statement_cache_capacity(SQLITE_STATEMENT_CACHE)
                // Negative: a size in KiB rather than a number of pages.
                .pragma("cache_size", format!("-{SQLITE_PAGE_CACHE_KIB}"))
        });
    } else {
        options.max_connections(16);
    }
    let db = Database::connect(options).await?;
    if db.get_database_backend() == DbBackend::Sqlite {
        db.execute_unprepared("PRAGMA journal_mode=WAL").await?;
    }
    Ok(db)
}

fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// `true` if the database answers a trivial query (for `/readyz`).
pub async fn ping(db: &DatabaseConnection) -> bool {
    db.ping().await.is_ok()
}
