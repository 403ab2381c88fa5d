//! The outbox: events caused by a database change are written in the same transaction as the
//! change ([`enqueue_event`] for the catalog's events, on their own stream; [`enqueue`] for any
//! stream), published right after commit ([`OutboxNotifier::notify`] wakes the relay),
//! and swept by the [`OutboxRelay`] for anything left unsent (crash, Redis down). A row is deleted
//! only after Redis accepted it, so a crash can publish an event twice but never lose it; consumers
//! absorb the duplicate by `event_id`. This is the table; the relay is in `super::relay`.

use sea_orm::{
    ActiveValue::{NotSet, Set},
    ConnectionTrait, DbErr,
    entity::prelude::*,
};

use super::deferred::{WriteConnection, insert_deferrable};
pub use super::relay::{OutboxNotifier, OutboxRelay};
use crate::{
    envelope::{Envelope, EventEnvelope},
    events::Event,
};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mesh_outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub event_id: String,
    /// Unprefixed stream name.
    pub stream: String,
    /// The envelope's stream fields as a JSON array of `[name, value]` pairs.
    #[sea_orm(column_type = "Text")]
    pub fields: String,
    /// Unix time in milliseconds.
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Adds an event to the outbox inside the caller's transaction.
pub async fn enqueue<C: WriteConnection>(
    txn: &C,
    stream: &str,
    envelope: &Envelope,
) -> Result<(), DbErr> {
    enqueue_many(txn, &[(stream, envelope)]).await
}

/// Adds events to the outbox inside the caller's transaction, in one statement; they are
/// published in the order given.
pub async fn enqueue_many<C: WriteConnection>(
    txn: &C,
    events: &[(&str, &Envelope)],
) -> Result<(), DbErr> {
    let now = chrono::Utc::now().timestamp_millis();
    let rows = events
        .iter()
        .map(|&(stream, envelope)| {
            let fields: Vec<(&str, String)> = envelope.to_fields();
            let fields =
                serde_json::to_string(&fields).map_err(|e| DbErr::Custom(e.to_string()))?;
            Ok(ActiveModel {
                id: NotSet,
                event_id: Set(envelope.event_id.to_string()),
                stream: Set(stream.to_owned()),
                fields: Set(fields),
                created_at: Set(now),
            })
        })
        .collect::<Result<Vec<_>, DbErr>>()?;
    // Nothing reads an outbox row back before the commit: inside a worker's batch it is written
    // with the batch's other rows (`crate::db::deferred`).
    insert_deferrable(txn, rows).await
}

/// Adds an event of the catalog to the outbox, on its own stream (`E::TYPE`), inside the
/// caller's transaction: what every producer of the mesh calls.
pub async fn enqueue_event<C: WriteConnection, E: Event>(
    txn: &C,
    event: &EventEnvelope<E>,
) -> Result<(), DbErr> {
    enqueue(txn, E::TYPE, event).await
}

/// [`enqueue_event`] for several events of one type, in one statement.
pub async fn enqueue_events<C: WriteConnection, E: Event>(
    txn: &C,
    events: &[&EventEnvelope<E>],
) -> Result<(), DbErr> {
    let events: Vec<(&str, &Envelope)> = events.iter().map(|e| (E::TYPE, &***e)).collect();
    enqueue_many(txn, &events).await
}

/// Number of events waiting to be published.
pub async fn unsent<C: ConnectionTrait>(db: &C) -> Result<u64, DbErr> {
    Entity::find().count(db).await
}

/// The outbox's backlog: rows waiting to be published, and the `created_at` (Unix ms) of the
/// oldest, in one query (the relay deletes rows as it publishes them).
pub async fn backlog<C: ConnectionTrait>(db: &C) -> Result<(u64, Option<i64>), DbErr> {
    let statement = sea_orm::Statement::from_string(
        db.get_database_backend(),
        "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM mesh_outbox",
    );
    let Some(row) = db.query_one_raw(statement).await? else {
        return Ok((0, None));
    };
    let n: i64 = row.try_get("", "n")?;
    let oldest: Option<i64> = row.try_get("", "oldest")?;
    Ok((n.max(0) as u64, oldest))
}
