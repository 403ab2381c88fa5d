//! Rows that the handlers of a worker's batch, joined without savepoints (`super::write`,
//! "Batches"), leave to the batch: their inbox records (`super::inbox::begin_once`) and any rows
//! of their own that nothing reads back before the commit (outbox rows, ledgers, histories:
//! [`insert_deferrable`]). The batch writes them just before it commits, one statement per table
//! for all its handlers, instead of one statement per handler. Outside such a batch they are
//! inserted at once.

use std::{
    any::{Any, TypeId},
    sync::Mutex,
};

use futures::future::BoxFuture;
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
};

/// A connection writes go through: a database, a transaction, or a `WriteTxn`, which inside a
/// batch joined without savepoints leaves deferrable rows to the batch.
pub trait WriteConnection: ConnectionTrait {
    /// The batch that takes deferred rows, if any.
    #[doc(hidden)]
    fn deferred(&self) -> Option<&Deferred> {
        None
    }
}

impl WriteConnection for DatabaseConnection {}

impl WriteConnection for DatabaseTransaction {}

/// Inserts `rows` (of one table) through `conn`: at once, or, inside a worker's batch joined
/// without savepoints, just before the batch commits, together with the rows of that table the
/// batch's other handlers deferred (in the order they were deferred). Only for rows nothing
/// reads back before the commit: a deferred row is not in its table until then, so a check that
/// looks for it (an idempotency check, a unique key read first) would not find it. A deferred
/// row that breaks a constraint fails the batch's first try, which is then applied again with
/// savepoints, where every insert is immediate and only its handler fails.
pub async fn insert_deferrable<C, A>(conn: &C, rows: Vec<A>) -> Result<(), DbErr>
where
    C: WriteConnection,
    A: ActiveModelTrait + Send + Sync + 'static,
{
    if rows.is_empty() {
        return Ok(());
    }
    match conn.deferred() {
        Some(deferred) => {
            deferred.push(rows);
            Ok(())
        }
        None => insert_many(conn, rows).await,
    }
}

async fn insert_many<C: ConnectionTrait, A: ActiveModelTrait>(
    conn: &C,
    rows: Vec<A>,
) -> Result<(), DbErr> {
    <A::Entity as EntityTrait>::insert_many(rows)
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// What the handlers of one batch deferred (see the module docs).
#[derive(Default)]
pub struct Deferred {
    /// Inbox records `(group, event_id)`.
    inbox: Mutex<Vec<(String, String)>>,
    /// Rows by table, tables in the order their first row was deferred.
    tables: Mutex<Vec<(TypeId, Box<dyn Table>)>>,
}

impl Deferred {
    /// Defers the inbox record of `event_id` for `group`; `false` if a handler of the batch
    /// recorded that event already.
    pub(crate) fn record_inbox(&self, group: &str, event_id: &str) -> bool {
        let mut records = lock(&self.inbox);
        if records.iter().any(|(g, e)| g == group && e == event_id) {
            return false;
        }
        records.push((group.to_owned(), event_id.to_owned()));
        true
    }

    /// The deferred inbox records, taken to be written (`super::inbox::write_deferred`).
    pub(crate) fn take_inbox(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *lock(&self.inbox))
    }

    /// Inserts the deferred rows, one statement per table.
    pub(crate) async fn write_tables(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        let tables = std::mem::take(&mut *lock(&self.tables));
        for (_, table) in tables {
            table.write(txn).await?;
        }
        Ok(())
    }

    /// How many inbox records and tables are deferred and not yet written.
    pub(crate) fn unwritten(&self) -> usize {
        lock(&self.inbox).len() + lock(&self.tables).len()
    }

    fn push<A: ActiveModelTrait + Send + Sync + 'static>(&self, mut rows: Vec<A>) {
        let mut tables = lock(&self.tables);
        let id = TypeId::of::<A>();
        if let Some((_, table)) = tables.iter_mut().find(|(t, _)| *t == id)
            && let Some(Rows(held)) = table.as_any().downcast_mut::<Rows<A>>()
        {
            held.append(&mut rows);
            return;
        }
        tables.push((id, Box::new(Rows(rows))));
    }
}

/// The deferred rows of one table.
trait Table: Send {
    fn as_any(&mut self) -> &mut dyn Any;
    fn write<'a>(self: Box<Self>, txn: &'a DatabaseTransaction)
    -> BoxFuture<'a, Result<(), DbErr>>;
}

struct Rows<A>(Vec<A>);

impl<A: ActiveModelTrait + Send + Sync + 'static> Table for Rows<A> {
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }

    fn write<'a>(
        self: Box<Self>,
        txn: &'a DatabaseTransaction,
    ) -> BoxFuture<'a, Result<(), DbErr>> {
        Box::pin(insert_many(txn, self.0))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
