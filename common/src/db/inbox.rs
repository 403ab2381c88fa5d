//! The inbox: `event_id`s a group has applied, recorded in the same transaction as the effect,
//! so that a crash between commit and ack can never apply an event twice.

use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, DbErr, QuerySelect as _,
    TryInsertResult, entity::prelude::*,
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
    let event_id = envelope.event_id.to_string();
    let fresh = match txn.defer_inbox_record(group, &event_id) {
        // In a batch: the batch writes the record before it commits (`write_deferred`).
        Some(fresh) => fresh,
        None => record(&txn, group, &event_id).await?,
    };
    if fresh {
        Ok(Some(txn))
    } else {
        // The insert found the row: nothing was written.
        txn.release_unchanged().await?;
        Ok(None)
    }
}

/// Writes the inbox records the joined handlers of `batch` deferred
/// (`WriteTxn::defer_inbox_record`), in one statement. `false`: one of those events was recorded
/// already (applied before, or by another replica meanwhile), so a handler applied it again
/// inside the batch: the batch must be rolled back, not committed.
pub async fn write_deferred(batch: &super::BatchTxn) -> Result<bool, DbErr> {
    let records = batch.take_deferred_inbox();
    if records.is_empty() {
        return Ok(true);
    }
    let expected = records.len() as u64;
    let now = chrono::Utc::now().timestamp_millis();
    let rows = records.into_iter().map(|(group, event_id)| ActiveModel {
        consumer_group: Set(group),
        event_id: Set(event_id),
        processed_at: Set(now),
    });
    let result = Entity::insert_many(rows)
        .on_conflict_do_nothing()
        .exec_without_returning(batch.connection())
        .await?;
    Ok(matches!(result, TryInsertResult::Inserted(n) if n == expected))
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

/// The groups that have rows in the inbox.
pub async fn groups<C: ConnectionTrait>(db: &C) -> Result<Vec<String>, DbErr> {
    Entity::find()
        .select_only()
        .column(Column::ConsumerGroup)
        .distinct()
        .into_tuple()
        .all(db)
        .await
}

/// Deletes `group`'s inbox rows of events applied before `before_ms` (Unix ms); returns how
/// many. Which cut-off is safe is the caller's to know: see `crate::runtime::inbox_pruning`.
pub async fn prune<C: ConnectionTrait>(db: &C, group: &str, before_ms: i64) -> Result<u64, DbErr> {
    let deleted = Entity::delete_many()
        .filter(Column::ConsumerGroup.eq(group))
        .filter(Column::ProcessedAt.lt(before_ms))
        .exec(db)
        .await?;
    Ok(deleted.rows_affected)
}
