//! Telling a database *outage* from any other database error: the server is down or unreachable,
//! the pool could not hand out a connection in time, the SQLite file is locked by another writer,
//! cannot be opened, or its disk fails. Such an error says nothing about the request or the
//! stream entry that met it, so:
//!
//! - the HTTP API answers 503 with `Retry-After` (`problem::ApiError`), not 500;
//! - the stream runtime retries the entry without counting the delivery and never dead-letters
//!   it for this (`runtime::retry`): an outage is not a poison message.
//!
//! Everything else (a constraint, a bad query, a decoding error) is not an outage.

use std::error::Error as StdError;

use sea_orm::{DbErr, RuntimeErr, sqlx};

/// How long to wait for a connection from the pool (PostgreSQL: including connecting) before a
/// request or a handler gives up with an outage error, instead of hanging while the server is
/// away.
pub const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// SQLite's busy timeout: how long a write waits for another process's write lock (another
/// replica on the file, a backup holding it) before failing with `SQLITE_BUSY`, an outage.
/// Writers of one process queue on their own turn first (`write.rs`), so the busy handler only
/// arbitrates between processes, where a transaction holds the lock for milliseconds.
pub const SQLITE_BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// `true` if `error`, or any error in its chain of causes, is a database outage.
pub fn is_outage(error: &anyhow::Error) -> bool {
    error.chain().any(is_outage_cause)
}

/// `true` if this one error (not its causes) is a database outage.
fn is_outage_cause(error: &(dyn StdError + 'static)) -> bool {
    if let Some(db) = error.downcast_ref::<DbErr>() {
        return is_outage_db(db);
    }
    if let Some(sqlx) = error.downcast_ref::<sqlx::Error>() {
        return is_outage_sqlx(sqlx);
    }
    false
}

/// `true` if `error` is a database outage (see the module docs).
pub fn is_outage_db(error: &DbErr) -> bool {
    match error {
        DbErr::ConnectionAcquire(_) => true,
        DbErr::Conn(runtime) | DbErr::Exec(runtime) | DbErr::Query(runtime) => match runtime {
            RuntimeErr::SqlxError(sqlx) => is_outage_sqlx(sqlx),
            // sea-orm's own text for a connection it lost or could not use.
            RuntimeErr::Internal(text) => text.contains("connection"),
            #[allow(unreachable_patterns)]
            _ => false,
        },
        // A write turn not obtained in time (`write.rs`) or a connection that failed to open.
        DbErr::Custom(text) => text.starts_with(OUTAGE_PREFIX),
        _ => false,
    }
}

/// `true` if `error`, or any error in its chain of causes, is a lock conflict between
/// transactions: PostgreSQL's `deadlock_detected` (40P01), `serialization_failure` (40001) or
/// `lock_not_available` (55P03). Replicas of a service meet them when their transactions lock the
/// same rows (a shopper's wallet, a product's stock) in different orders. Like an outage, a
/// conflict says nothing about the entry: the runtime retries it without counting the delivery,
/// and a batch that meets one is rolled back whole and its entries applied one by one
/// (`runtime::batch`), each in a transaction of its own that holds its locks only briefly.
pub fn is_lock_conflict(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(postgres_sqlstate)
        .any(|code| matches!(code.as_str(), "40P01" | "40001" | "55P03"))
}

/// The SQLSTATE of this one error (not its causes), if it is a PostgreSQL error.
fn postgres_sqlstate(error: &(dyn StdError + 'static)) -> Option<String> {
    let sqlx = match error.downcast_ref::<DbErr>() {
        Some(DbErr::Conn(RuntimeErr::SqlxError(sqlx)))
        | Some(DbErr::Exec(RuntimeErr::SqlxError(sqlx)))
        | Some(DbErr::Query(RuntimeErr::SqlxError(sqlx))) => sqlx.as_ref(),
        Some(_) => return None,
        None => error.downcast_ref::<sqlx::Error>()?,
    };
    let sqlx::Error::Database(db) = sqlx else {
        return None;
    };
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        return None;
    }
    db.code().map(|code| code.into_owned())
}

/// The text `write.rs` and `connect` put before a [`DbErr::Custom`] that is an outage.
pub(crate) const OUTAGE_PREFIX: &str = "database unavailable: ";

fn is_outage_sqlx(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => {
            let Some(code) = db.code() else {
                return false;
            };
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                code.parse().is_ok_and(is_sqlite_outage)
            } else {
                is_postgres_outage(&code)
            }
        }
        _ => false,
    }
}

/// SQLite result codes (the extended code) that mean the file cannot serve now, whatever was
/// asked: BUSY 5, LOCKED 6, NOMEM 7, READONLY 8, IOERR 10, FULL 13, CANTOPEN 14, PROTOCOL 15.
fn is_sqlite_outage(extended: i64) -> bool {
    matches!(extended & 0xff, 5 | 6 | 7 | 8 | 10 | 13 | 14 | 15)
}

/// PostgreSQL SQLSTATEs that mean the server cannot serve now: 08 connection exception, 53
/// insufficient resources (too many connections, disk full), 57P01-57P03 the server shutting
/// down, crashed or not accepting connections yet, 58 system error (I/O).
fn is_postgres_outage(sqlstate: &str) -> bool {
    sqlstate.starts_with("08")
        || sqlstate.starts_with("53")
        || matches!(sqlstate, "57P01" | "57P02" | "57P03")
        || sqlstate.starts_with("58")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_outages_and_constraint_violations_are_not() {
        let io = DbErr::Conn(RuntimeErr::SqlxError(std::sync::Arc::new(sqlx::Error::Io(
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"),
        ))));
        assert!(is_outage_db(&io));
        assert!(is_outage(
            &anyhow::Error::from(io).context("placing an order")
        ));
        let acquire = DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::Timeout);
        assert!(is_outage(&acquire.into()));
        assert!(is_outage_db(&DbErr::Custom(format!(
            "{OUTAGE_PREFIX}write turn"
        ))));
        assert!(!is_outage_db(&DbErr::RecordNotFound("x".into())));
        assert!(!is_outage(&anyhow::anyhow!("order does not exist")));
        for code in [5, 517, 14, 1034] {
            assert!(is_sqlite_outage(code), "{code}");
        }
        for code in [19, 2067, 1, 11] {
            assert!(!is_sqlite_outage(code), "{code}");
        }
        for code in ["08006", "57P01", "53300"] {
            assert!(is_postgres_outage(code), "{code}");
        }
        for code in ["23505", "40001", "42P01"] {
            assert!(!is_postgres_outage(code), "{code}");
        }
    }
}
