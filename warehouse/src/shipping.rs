//! The shipment rules, shared by the HTTP API and the worker. Every status change is one
//! conditional statement (`… SET status = 'shipped' WHERE id = ? AND status = 'pending'`), never
//! read-modify-write, so an admin and the worker (or two replicas) racing on one shipment can
//! never both win; the winner writes its follow-up event to the outbox in the same transaction.

use common::events::{OrderLine, OrderShipped};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, TryInsertResult, sea_query::Expr,
};
use uuid::Uuid;

use crate::entity::shipment::{self, CANCELLED, FAILED, PENDING, SHIPPED};

/// Who carries a shipment and how to follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    pub carrier: String,
    pub tracking_number: String,
}

impl Dispatch {
    /// A dispatch with `carrier` and a fresh tracking number (`MESH` + 16 hex digits).
    pub fn with_carrier(carrier: &str) -> Self {
        let tracking = Uuid::new_v4().simple().to_string()[..16].to_ascii_uppercase();
        Self {
            carrier: carrier.to_owned(),
            tracking_number: format!("MESH{tracking}"),
        }
    }
}

/// Creates the shipment of an order: `pending`, or with `dispatch` already `shipped` (auto
/// dispatch: one insert instead of an insert, a conditional update and a read back). `None`: the
/// order has a shipment already (created under another event id, shipped, failed, or a tombstone
/// of a refund that came first).
pub async fn create<C: ConnectionTrait>(
    conn: &C,
    order_id: Uuid,
    user_id: Uuid,
    items: &[OrderLine],
    dispatch: Option<&Dispatch>,
) -> Result<Option<shipment::Model>, DbErr> {
    let items = serde_json::to_value(items).map_err(|e| DbErr::Custom(e.to_string()))?;
    let now = chrono::Utc::now();
    let row = shipment::Model {
        id: Uuid::now_v7(),
        order_id,
        user_id,
        items,
        status: if dispatch.is_some() { SHIPPED } else { PENDING }.to_owned(),
        carrier: dispatch.map(|d| d.carrier.clone()),
        tracking_number: dispatch.map(|d| d.tracking_number.clone()),
        reason: None,
        created_at: now,
        updated_at: now,
        shipped_at: dispatch.map(|_| now),
    };
    insert(conn, row).await
}

/// Flips a pending shipment to `shipped` with `dispatch`. `None`: it was not pending.
pub async fn ship<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
    dispatch: &Dispatch,
) -> Result<Option<shipment::Model>, DbErr> {
    let now = chrono::Utc::now();
    let flipped = shipment::Entity::update_many()
        .col_expr(shipment::Column::Status, Expr::value(SHIPPED))
        .col_expr(shipment::Column::Carrier, Expr::value(&dispatch.carrier))
        .col_expr(
            shipment::Column::TrackingNumber,
            Expr::value(&dispatch.tracking_number),
        )
        .col_expr(shipment::Column::ShippedAt, Expr::value(now))
        .col_expr(shipment::Column::UpdatedAt, Expr::value(now))
        .filter(shipment::Column::Id.eq(id))
        .filter(shipment::Column::Status.eq(PENDING))
        .exec(conn)
        .await?
        .rows_affected;
    if flipped == 0 {
        return Ok(None);
    }
    shipment::Entity::find_by_id(id).one(conn).await
}

/// Flips a pending shipment to `failed` with `reason`. `None`: it was not pending.
pub async fn fail<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
    reason: &str,
) -> Result<Option<shipment::Model>, DbErr> {
    let flipped = shipment::Entity::update_many()
        .col_expr(shipment::Column::Status, Expr::value(FAILED))
        .col_expr(shipment::Column::Reason, Expr::value(reason))
        .col_expr(shipment::Column::UpdatedAt, Expr::value(chrono::Utc::now()))
        .filter(shipment::Column::Id.eq(id))
        .filter(shipment::Column::Status.eq(PENDING))
        .exec(conn)
        .await?
        .rows_affected;
    if flipped == 0 {
        return Ok(None);
    }
    shipment::Entity::find_by_id(id).one(conn).await
}

/// What a refund did to the order's shipment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withdrawal {
    /// No shipment yet: a cancelled tombstone now stands in its place, so a later
    /// `stock-reserved` creates nothing.
    Tombstoned,
    /// The pending shipment is cancelled.
    Cancelled,
    /// The shipment had already left, failed or been cancelled; it stays as it is.
    Unchanged,
}

/// Withdraws the order from the warehouse after a refund. The tombstone is inserted first (do
/// nothing on conflict) and the pending row cancelled second: if a `stock-reserved` of the same
/// order commits in between, the insert waits for it and the update then sees its row, so the
/// refund is never lost between the two.
pub async fn withdraw<C: ConnectionTrait>(
    conn: &C,
    order_id: Uuid,
    user_id: Uuid,
    reason: &str,
) -> Result<Withdrawal, DbErr> {
    let now = chrono::Utc::now();
    let tombstone = shipment::Model {
        id: Uuid::now_v7(),
        order_id,
        user_id,
        items: serde_json::Value::Array(vec![]),
        status: CANCELLED.to_owned(),
        carrier: None,
        tracking_number: None,
        reason: Some(reason.to_owned()),
        created_at: now,
        updated_at: now,
        shipped_at: None,
    };
    let tombstone = insert(conn, tombstone).await?;
    if tombstone.is_some() {
        return Ok(Withdrawal::Tombstoned);
    }
    let cancelled = shipment::Entity::update_many()
        .col_expr(shipment::Column::Status, Expr::value(CANCELLED))
        .col_expr(shipment::Column::Reason, Expr::value(reason))
        .col_expr(shipment::Column::UpdatedAt, Expr::value(chrono::Utc::now()))
        .filter(shipment::Column::OrderId.eq(order_id))
        .filter(shipment::Column::Status.eq(PENDING))
        .exec(conn)
        .await?
        .rows_affected;
    Ok(if cancelled > 0 {
        Withdrawal::Cancelled
    } else {
        Withdrawal::Unchanged
    })
}

/// The `order-shipped` payload of a shipped shipment.
pub fn order_shipped(shipment: &shipment::Model) -> OrderShipped {
    OrderShipped {
        order_id: shipment.order_id,
        shipment_id: shipment.id,
        carrier: shipment.carrier.clone().unwrap_or_default(),
        tracking_number: shipment.tracking_number.clone().unwrap_or_default(),
    }
}

/// Inserts a shipment row unless the order has one; the new row, or `None`.
async fn insert<C: ConnectionTrait>(
    conn: &C,
    row: shipment::Model,
) -> Result<Option<shipment::Model>, DbErr> {
    let result = shipment::Entity::insert(shipment::ActiveModel::from(row.clone()))
        .on_conflict_do_nothing_on([shipment::Column::OrderId])
        .exec_without_returning(conn)
        .await?;
    Ok(match result {
        TryInsertResult::Inserted(n) if n > 0 => Some(row),
        _ => None,
    })
}
