//! Group commit: concurrent writers of one kind (a service's `POST /orders`, say) hand their
//! items to one task, which writes whatever has queued up meanwhile in one transaction — with
//! one statement per table for the whole group where the [`GroupWrite`] can — and answers each
//! writer once the group has committed.
//!
//! On SQLite every write transaction takes the file's one write turn (`super::write`), so
//! concurrent writers already wait for each other; grouping turns that wait into shared work:
//! one `BEGIN`, one `COMMIT` and a few multi-row statements for a group instead of each for every
//! item. An idle writer is not held back: a group is whatever queued while the previous one was
//! being written, so a lone item is written at once.
//!
//! A group that fails is written again one item per transaction, so an item that cannot be
//! written (a unique key taken) fails alone with its own error and the rest commit. If the
//! database itself is unavailable (the transaction cannot begin or commit) every item of the
//! group gets that error at once instead of each waiting for it in turn.

use std::{future::Future, panic::AssertUnwindSafe};

use futures::FutureExt as _;
use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::{mpsc, oneshot};

use super::{
    outage::is_outage_db,
    write::{WriteTxn, begin},
};

/// What a [`GroupCommit`] writes: items of one kind, many per transaction.
pub trait GroupWrite: Send + Sync + 'static {
    type Item: Send + Sync + 'static;
    type Output: Send + 'static;

    /// Writes `items` in `txn` and returns one output per item, in their order. An error rolls
    /// the whole group back (the items are then written again one by one).
    fn write(
        &self,
        txn: &WriteTxn,
        items: &[Self::Item],
    ) -> impl Future<Output = Result<Vec<Self::Output>, DbErr>> + Send;

    /// The item's share of [`GroupCommit::spawn`]'s `max_weight` (rows, bound parameters).
    fn weight(&self, _item: &Self::Item) -> usize {
        1
    }
}

/// A queued item and where its answer goes.
struct Job<W: GroupWrite> {
    item: W::Item,
    reply: oneshot::Sender<Result<W::Output, DbErr>>,
}

/// The writers' side of a group-commit task (cheap to clone).
pub struct GroupCommit<W: GroupWrite> {
    queue: mpsc::Sender<Job<W>>,
}

impl<W: GroupWrite> Clone for GroupCommit<W> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

/// An item handed to the group-commit task, not yet written.
pub struct Pending<T>(oneshot::Receiver<Result<T, DbErr>>);

impl<T> Pending<T> {
    /// Waits until the item's group has committed (or the item failed).
    pub async fn written(self) -> Result<T, DbErr> {
        self.0.await.unwrap_or_else(|_| {
            Err(DbErr::Custom(
                "the group write ended without an answer".into(),
            ))
        })
    }
}

fn stopped() -> DbErr {
    DbErr::Custom("the group-commit task has stopped".into())
}

/// Items waiting for the task, at most: further writers wait to queue (back-pressure).
const QUEUE: usize = 1024;

impl<W: GroupWrite> GroupCommit<W> {
    /// Starts the task that writes `writer`'s items on `db`, groups of at most `max_weight` (by
    /// [`GroupWrite::weight`]; an item heavier than that is a group of its own). The task ends
    /// when every clone of the returned handle is dropped, after writing what was queued.
    pub fn spawn(db: DatabaseConnection, writer: W, max_weight: usize) -> Self {
        let (queue, jobs) = mpsc::channel(QUEUE);
        tokio::spawn(run(db, writer, jobs, max_weight.max(1)));
        Self { queue }
    }

    /// Writes `item` with whatever else is queued; returns once its group committed.
    pub async fn write(&self, item: W::Item) -> Result<W::Output, DbErr> {
        self.submit(item).await?.written().await
    }

    /// Queues `item` and returns without waiting for it to be written.
    pub async fn submit(&self, item: W::Item) -> Result<Pending<W::Output>, DbErr> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { item, reply })
            .await
            .map_err(|_| stopped())?;
        Ok(Pending(answer))
    }
}

async fn run<W: GroupWrite>(
    db: DatabaseConnection,
    writer: W,
    mut jobs: mpsc::Receiver<Job<W>>,
    max_weight: usize,
) {
    let mut carried: Option<Job<W>> = None;
    loop {
        let first = match carried.take() {
            Some(job) => job,
            None => match jobs.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let mut weight = writer.weight(&first.item);
        let mut group = vec![first];
        while weight < max_weight {
            let Ok(job) = jobs.try_recv() else { break };
            let next = writer.weight(&job.item);
            if weight + next > max_weight {
                carried = Some(job);
                break;
            }
            weight += next;
            group.push(job);
        }
        // A writer that panics fails its group (its writers get an error), not the task: the
        // next group is written as usual.
        if AssertUnwindSafe(write_group(&db, &writer, group))
            .catch_unwind()
            .await
            .is_err()
        {
            tracing::error!("a group write panicked; its items were not written");
        }
    }
}

/// Writes one group and answers its writers (see the module docs for what a failure does).
async fn write_group<W: GroupWrite>(db: &DatabaseConnection, writer: &W, group: Vec<Job<W>>) {
    let (items, replies): (Vec<_>, Vec<_>) = group.into_iter().map(|j| (j.item, j.reply)).unzip();
    let error = match write_once(db, writer, &items).await {
        Ok(outputs) => {
            for (reply, output) in replies.into_iter().zip(outputs) {
                let _ = reply.send(Ok(output));
            }
            return;
        }
        Err(Failure::Write(_)) if items.len() > 1 => {
            write_one_by_one(db, writer, &items, replies).await;
            return;
        }
        Err(Failure::Unavailable(error) | Failure::Write(error)) => error,
    };
    for reply in replies {
        let _ = reply.send(Err(error.clone()));
    }
}

/// Writes each item of a failed group in a transaction of its own; once the database is
/// unavailable, the rest get that error without trying.
async fn write_one_by_one<W: GroupWrite>(
    db: &DatabaseConnection,
    writer: &W,
    items: &[W::Item],
    replies: Vec<oneshot::Sender<Result<W::Output, DbErr>>>,
) {
    let mut unavailable: Option<DbErr> = None;
    for (item, reply) in items.iter().zip(replies) {
        let answer = match &unavailable {
            Some(error) => Err(error.clone()),
            None => match write_once(db, writer, std::slice::from_ref(item)).await {
                Ok(mut outputs) => Ok(outputs.remove(0)),
                Err(Failure::Write(error)) => Err(error),
                Err(Failure::Unavailable(error)) => {
                    unavailable = Some(error.clone());
                    Err(error)
                }
            },
        };
        let _ = reply.send(answer);
    }
}

/// Why a group was not written.
enum Failure {
    /// The database: the transaction could not begin or commit, or it went away meanwhile.
    Unavailable(DbErr),
    /// The writer's statements failed (perhaps because of one item).
    Write(DbErr),
}

async fn write_once<W: GroupWrite>(
    db: &DatabaseConnection,
    writer: &W,
    items: &[W::Item],
) -> Result<Vec<W::Output>, Failure> {
    let txn = begin(db).await.map_err(Failure::Unavailable)?;
    let outputs = match writer.write(&txn, items).await {
        Ok(outputs) if outputs.len() == items.len() => outputs,
        Ok(outputs) => {
            return Err(Failure::Write(DbErr::Custom(format!(
                "a group write returned {} outputs for {} items",
                outputs.len(),
                items.len()
            ))));
        }
        Err(error) if is_outage_db(&error) => return Err(Failure::Unavailable(error)),
        Err(error) => return Err(Failure::Write(error)),
    };
    txn.commit().await.map_err(Failure::Unavailable)?;
    Ok(outputs)
}
