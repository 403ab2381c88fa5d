//! The outbox relay: publishes the rows of the outbox table (`super::outbox`) to their streams,
//! oldest first, as soon as an [`OutboxNotifier`] rings after a commit and on a periodic sweep for
//! anything left unsent (crash, Redis down). A row is deleted only after Redis accepted it.

use std::{sync::Arc, time::Duration};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::write::begin;
use crate::{
    backoff::{Backoff, LogLimiter},
    publisher::Publisher,
};

/// Wakes the relay after a commit so the event goes out at once.
#[derive(Clone, Default)]
pub struct OutboxNotifier(Arc<Notify>);

impl OutboxNotifier {
    /// Wakes the relay. Inside a worker's batch transaction (`super::in_batch_transaction`) it
    /// does nothing: a handler's commit there is not durable yet, so the relay would find
    /// nothing (a `BEGIN`, a `DELETE` and a `ROLLBACK` per event, measured on PostgreSQL), and
    /// the worker wakes it once the batch has committed (`BatchTransactions::notifier`).
    pub fn notify(&self) {
        if !super::write::in_batch_scope() {
            self.0.notify_one();
        }
    }
}

/// Publishes outbox rows, oldest first.
#[derive(Clone)]
pub struct OutboxRelay {
    db: DatabaseConnection,
    publisher: Publisher,
    notifier: OutboxNotifier,
    /// How often the table is swept even without a notification.
    pub sweep_every: Duration,
}

const BATCH: u64 = 500;

impl OutboxRelay {
    pub fn new(db: DatabaseConnection, publisher: Publisher) -> Self {
        Self {
            db,
            publisher,
            notifier: OutboxNotifier::default(),
            sweep_every: Duration::from_secs(1),
        }
    }

    pub fn notifier(&self) -> OutboxNotifier {
        self.notifier.clone()
    }

    /// Publishes everything unsent; returns how many events went out.
    ///
    /// Each batch is taken with `DELETE … RETURNING` inside a transaction that stays open while
    /// Redis accepts the batch: replicas sharing one database never send the same rows (PostgreSQL
    /// skips rows another relay has locked; SQLite serialises writers), and if publishing fails
    /// the transaction rolls back and the rows stay for the next sweep. A crash after the publish
    /// and before the commit can still send a batch twice; consumers absorb that by `event_id`.
    /// (Reading, publishing and then deleting would free SQLite's writer during the Redis round
    /// trip, but two replicas on one file would then send the same rows.)
    pub async fn publish_pending(&self) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let sent = self.publish_batch().await?;
            total += sent;
            if (sent as u64) < BATCH {
                return Ok(total);
            }
        }
    }

    async fn publish_batch(&self) -> anyhow::Result<usize> {
        let backend = self.db.get_database_backend();
        let lock = match backend {
            DbBackend::Postgres => " FOR UPDATE SKIP LOCKED",
            _ => "",
        };
        let sql = format!(
            "DELETE FROM mesh_outbox WHERE id IN \
             (SELECT id FROM mesh_outbox ORDER BY id LIMIT {BATCH}{lock}) \
             RETURNING id, stream, fields"
        );
        let txn = begin(&self.db).await?;
        let rows = txn
            .query_all_raw(Statement::from_string(backend, sql))
            .await?;
        if rows.is_empty() {
            txn.rollback().await?;
            return Ok(0);
        }
        let items = decode_rows(rows)?;
        if let Err(error) = self.publisher.publish_fields_many(&items).await {
            txn.rollback().await?;
            return Err(error.into());
        }
        txn.commit().await?;
        metrics::counter!("mesh_outbox_published_total").increment(items.len() as u64);
        Ok(items.len())
    }

    /// Runs until `shutdown`: publishes on every notification and sweeps periodically; a final
    /// sweep on the way out.
    pub async fn run(self, shutdown: CancellationToken) {
        let log = LogLimiter::new(Duration::from_secs(5));
        let mut backoff = Backoff::reconnect();
        loop {
            match self.publish_pending().await {
                Ok(_) => backoff.reset(),
                Err(error) => {
                    if let Some(suppressed) = log.allow() {
                        tracing::warn!(
                            error = format!("{error:#}"),
                            suppressed,
                            "outbox publish failed; will retry"
                        );
                    }
                    let delay = backoff.next_delay();
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => continue,
                        _ = shutdown.cancelled() => return,
                    }
                }
            }
            tokio::select! {
                _ = self.notifier.0.notified() => {}
                _ = tokio::time::sleep(self.sweep_every) => {}
                _ = shutdown.cancelled() => {
                    let _ = self.publish_pending().await;
                    return;
                }
            }
        }
    }
}

/// One event to publish: its stream and its envelope's fields.
type Outgoing = (String, Vec<(String, String)>);

/// The events of outbox rows, in id order.
fn decode_rows(rows: Vec<sea_orm::QueryResult>) -> anyhow::Result<Vec<Outgoing>> {
    let mut batch = Vec::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.try_get("", "id")?;
        let stream: String = row.try_get("", "stream")?;
        let fields: String = row.try_get("", "fields")?;
        let fields: Vec<(String, String)> = serde_json::from_str(&fields)?;
        batch.push((id, stream, fields));
    }
    batch.sort_by_key(|(id, _, _)| *id);
    Ok(batch.into_iter().map(|(_, s, f)| (s, f)).collect())
}
