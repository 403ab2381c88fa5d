//! The inbox: `event_id`s a group has applied, recorded in the same transaction as the effect,
//! so that a crash between commit and ack can never apply an event twice.

use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, DbErr, TryInsertResult,
    entity::prelude::*,
};

use crate::envelope::Envelope;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mesh_inbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub consumer_group: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub event_id: String,
    /// Unix time in milliseconds.
    pub processed_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Records `event_id` for `group` inside `txn`. `false` means the event was applied before:
/// roll back (drop the transaction) and acknowledge.
pub async fn record<C: ConnectionTrait>(
    txn: &C,
    group: &str,
    event_id: &str,
) -> Result<bool, DbErr> {
    let row = ActiveModel {
        consumer_group: Set(group.to_owned()),
        event_id: Set(event_id.to_owned()),
        processed_at: Set(chrono::Utc::now().timestamp_millis()),
    };
    let result = Entity::insert(row)
        .on_conflict_do_nothing()
        .exec_without_returning(txn)
        .await?;
    Ok(matches!(result, TryInsertResult::Inserted(n) if n > 0))
}

/// Begins the transaction of an event's effect with its inbox record already in it.
/// `None`: this group applied the event before; there is nothing to do but acknowledge.
pub async fn begin_once(
    db: &DatabaseConnection,
    group: &str,
    envelope: &Envelope,
) -> Result<Option<super::WriteTxn>, DbErr> {
    let txn = super::begin(db).await?;
    if record(&txn, group, &envelope.event_id.to_string()).await? {
        Ok(Some(txn))
    } else {
        txn.rollback().await?;
        Ok(None)
    }
}

/// Whether `group` has applied `event_id` (for tests and tools).
pub async fn contains<C: ConnectionTrait>(
    db: &C,
    group: &str,
    event_id: &str,
) -> Result<bool, DbErr> {
    Ok(Entity::find_by_id((group.to_owned(), event_id.to_owned()))
        .one(db)
        .await?
        .is_some())
}

/// Deletes the inbox rows of events applied more than `retention` ago, every `every` until
/// `shutdown`. Safe because the order of expiry is fixed: an event can only be delivered again
/// while its entry is in a stream, and the worker's safe trim removes entries after the stream
/// retention, which `WorkerArgs::validate` keeps at most half the idempotency retention used
/// here; by the time a row goes, no entry that could deliver its event is left. (The Redis
/// idempotency sets expire on the same retention and are only a fast path in front of this.)
pub async fn prune_periodically(
    db: DatabaseConnection,
    retention: std::time::Duration,
    every: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        match prune(&db, retention).await {
            Ok(0) => {}
            Ok(deleted) => {
                tracing::debug!(deleted, "inbox rows past the idempotency retention pruned")
            }
            Err(error) => tracing::warn!(%error, "inbox pruning failed; next time"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Deletes the inbox rows of events applied more than `retention` ago; returns how many.
pub async fn prune(db: &DatabaseConnection, retention: std::time::Duration) -> Result<u64, DbErr> {
    let cutoff = chrono::Utc::now().timestamp_millis()
        - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX / 2);
    let deleted = Entity::delete_many()
        .filter(Column::ProcessedAt.lt(cutoff))
        .exec(db)
        .await?;
    Ok(deleted.rows_affected)
}
