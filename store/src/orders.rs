//! The rules of orders shared by the API and the worker: pricing ([`fee_cents`], [`price`], [`insert_many`]),
//! status changes as one conditional `UPDATE … WHERE status IN (…)` plus a history row
//! ([`transition`]), and history entries that do not change the status ([`note`]). Callers pass
//! their transaction, so the change commits with its inbox record or outbox event.

use std::collections::BTreeMap;

use common::{
    Envelope,
    db::{self, GroupWrite, WriteConnection, WriteTxn, outbox},
    envelope::EventEnvelope,
    events::{OrderLine, OrderPlaced},
};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    sea_query::Expr,
};
use uuid::Uuid;

use crate::{
    SERVICE,
    entity::{catalog_product, order, order_line, order_status_history as history},
    status::OrderStatus,
};

/// The fee on a subtotal: `percent` of it in whole cents, rounded half up
/// (`fee = (subtotal × percent + 50) / 100`). Computed in 128 bits, so it cannot overflow.
pub fn fee_cents(subtotal_cents: i64, percent: u32) -> i64 {
    let fee = (i128::from(subtotal_cents) * i128::from(percent) + 50) / 100;
    i64::try_from(fee).unwrap_or(i64::MAX)
}

/// Why an order cannot be placed.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("unknown product {0}")]
    UnknownProduct(Uuid),
    #[error("product {0} is no longer sold")]
    Inactive(Uuid),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// What a new order asks for, validated and merged (one entry per product).
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub user_id: Uuid,
    pub items: BTreeMap<Uuid, i64>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub correlation_id: String,
}

/// An order priced from the catalog projection, ready for [`insert_many`].
#[derive(Debug)]
pub struct PricedOrder {
    pub order: order::Model,
    pub lines: Vec<order_line::Model>,
    /// Its `order-placed`, made in the request's span so that the event carries the request's
    /// trace context wherever the order is written (group commit writes it on another task).
    pub event: EventEnvelope<OrderPlaced>,
}

/// Prices `new` from the catalog projection: every product must be known and active.
///
/// Done before the order's transaction begins, on its own connection: on SQLite a transaction
/// that reads first and writes later fails at once (`SQLITE_BUSY`, no busy wait) if another
/// writer — the outbox relay, the worker — committed in between; and a request holding a
/// transaction must never wait for a second pooled connection (under load every pooled
/// connection is such a transaction, and they all wait). A price changing between this read and
/// the commit is the projection's ordinary staleness.
pub async fn price<C: ConnectionTrait>(
    catalog: &C,
    new: NewOrder,
    fee_percent: u32,
) -> Result<PricedOrder, PlaceError> {
    let products: BTreeMap<Uuid, catalog_product::Model> = catalog_product::Entity::find()
        .filter(catalog_product::Column::ProductId.is_in(new.items.keys().copied()))
        .all(catalog)
        .await?
        .into_iter()
        .map(|p| (p.product_id, p))
        .collect();
    let mut lines = Vec::with_capacity(new.items.len());
    let mut subtotal: i64 = 0;
    let order_id = Uuid::now_v7();
    for (&product_id, &quantity) in &new.items {
        let product = products
            .get(&product_id)
            .ok_or(PlaceError::UnknownProduct(product_id))?;
        if !product.active {
            return Err(PlaceError::Inactive(product_id));
        }
        let line_total = product.price_cents.saturating_mul(quantity);
        subtotal = subtotal.saturating_add(line_total);
        lines.push(order_line::Model {
            order_id,
            product_id,
            name: product.name.clone(),
            quantity,
            unit_price_cents: product.price_cents,
            line_total_cents: line_total,
        });
    }
    let fee = fee_cents(subtotal, fee_percent);
    let now = chrono::Utc::now();
    let model = order::Model {
        id: order_id,
        user_id: new.user_id,
        status: OrderStatus::Pending.as_str().to_owned(),
        subtotal_cents: subtotal,
        fee_cents: fee,
        total_cents: subtotal.saturating_add(fee),
        idempotency_key: new.idempotency_key,
        request_hash: new.request_hash,
        created_at: now,
        updated_at: now,
    };
    let event = order_placed(&model, &lines, &new.correlation_id)?;
    Ok(PricedOrder {
        order: model,
        lines,
        event,
    })
}

/// Inserts priced orders, their lines and their first history rows, and enqueues their
/// `order-placed` events — all inside `txn`, one statement per table (`POST /orders` writes
/// the orders placed at the same time as one group: [`PlaceOrders`]).
pub async fn insert_many<C: WriteConnection>(
    txn: &C,
    priced: &[PricedOrder],
) -> Result<Vec<(order::Model, Vec<order_line::Model>)>, DbErr> {
    if priced.is_empty() {
        return Ok(Vec::new());
    }
    // The orders first: with an `Idempotency-Key`, a concurrent retry fails here on the unique
    // index, before anything else is written.
    order::Entity::insert_many(
        priced
            .iter()
            .map(|p| order::ActiveModel::from(p.order.clone())),
    )
    .exec_without_returning(txn)
    .await?;
    order_line::Entity::insert_many(
        priced
            .iter()
            .flat_map(|p| p.lines.iter().cloned().map(order_line::ActiveModel::from)),
    )
    .exec_without_returning(txn)
    .await?;
    let now = chrono::Utc::now();
    history::Entity::insert_many(
        priced
            .iter()
            .map(|p| history_row(p.order.id, OrderStatus::Pending, "placed", None, now)),
    )
    .exec_without_returning(txn)
    .await?;
    let events: Vec<_> = priced.iter().map(|p| &p.event).collect();
    outbox::enqueue_events(txn, &events).await?;
    Ok(priced
        .iter()
        .map(|p| (p.order.clone(), p.lines.clone()))
        .collect())
}

/// The `order-placed` event of an order.
fn order_placed(
    model: &order::Model,
    lines: &[order_line::Model],
    correlation_id: &str,
) -> Result<EventEnvelope<OrderPlaced>, DbErr> {
    let payload = OrderPlaced {
        order_id: model.id,
        user_id: model.user_id,
        items: lines
            .iter()
            .map(|l| OrderLine {
                product_id: l.product_id,
                quantity: l.quantity,
                unit_price_cents: l.unit_price_cents,
            })
            .collect(),
        subtotal_cents: model.subtotal_cents,
        fee_cents: model.fee_cents,
        total_cents: model.total_cents,
    };
    Envelope::of_event(SERVICE, correlation_id, "", &payload)
        .map_err(|e| DbErr::Custom(format!("encode order-placed: {e}")))
}

/// `POST /orders`' [`GroupWrite`]: the orders placed while the previous group was being written
/// are inserted together ([`insert_many`]).
pub struct PlaceOrders;

/// The most a group weighs, an order counting one plus its lines ([`PlaceOrders`]'s weight):
/// keeps every multi-row statement far below SQLite's and PostgreSQL's limits on bound
/// parameters (32,766 and 65,535; a line has 6 columns, an order 10).
pub const MAX_GROUP_ROWS: usize = 1_000;

impl GroupWrite for PlaceOrders {
    type Item = PricedOrder;
    type Output = (order::Model, Vec<order_line::Model>);

    async fn write(
        &self,
        txn: &WriteTxn,
        items: &[PricedOrder],
    ) -> Result<Vec<Self::Output>, DbErr> {
        insert_many(txn, items).await
    }

    fn weight(&self, item: &PricedOrder) -> usize {
        1 + item.lines.len()
    }
}

/// What [`transition`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The order moved to the new status; a history row records it.
    Applied,
    /// The order is in this status, from which the move is not allowed (it is already there,
    /// further along, or terminal). Nothing changed.
    Ignored(OrderStatus),
    /// There is no such order.
    NoOrder,
}

/// Moves the order to `to` if its current status allows it, in one conditional statement, and
/// records the change. Concurrent transitions of one order serialise on its row.
pub async fn transition<C: WriteConnection>(
    conn: &C,
    order_id: Uuid,
    to: OrderStatus,
    reason: &str,
    event_id: Option<&str>,
) -> Result<Transition, DbErr> {
    let from: Vec<&str> = to.allowed_from().iter().map(|s| s.as_str()).collect();
    let moved = order::Entity::update_many()
        .col_expr(order::Column::Status, Expr::value(to.as_str()))
        .col_expr(order::Column::UpdatedAt, Expr::value(chrono::Utc::now()))
        .filter(order::Column::Id.eq(order_id))
        .filter(order::Column::Status.is_in(from))
        .exec(conn)
        .await?
        .rows_affected;
    if moved == 1 {
        insert_history(conn, order_id, to, reason, event_id).await?;
        return Ok(Transition::Applied);
    }
    Ok(match order::Entity::find_by_id(order_id).one(conn).await? {
        None => Transition::NoOrder,
        Some(o) => Transition::Ignored(parse_status(&o.status)?),
    })
}

/// Locks the order's row for the rest of the transaction (a no-op update, portable between
/// SQLite and PostgreSQL) and returns it as it stands; `None` if there is no such order.
pub async fn lock<C: ConnectionTrait>(
    conn: &C,
    order_id: Uuid,
) -> Result<Option<order::Model>, DbErr> {
    let touched = order::Entity::update_many()
        .col_expr(order::Column::Status, Expr::col(order::Column::Status))
        .filter(order::Column::Id.eq(order_id))
        .exec(conn)
        .await?
        .rows_affected;
    if touched == 0 {
        return Ok(None);
    }
    order::Entity::find_by_id(order_id).one(conn).await
}

/// Records something that happened to the order without changing its status (a refund asked
/// for, a cancellation requested), under the order's current status. `None`: no such order.
pub async fn note<C: WriteConnection>(
    conn: &C,
    order_id: Uuid,
    reason: &str,
    event_id: Option<&str>,
) -> Result<Option<OrderStatus>, DbErr> {
    let Some(order) = lock(conn, order_id).await? else {
        return Ok(None);
    };
    let status = parse_status(&order.status)?;
    insert_history(conn, order_id, status, reason, event_id).await?;
    Ok(Some(status))
}

/// The order's history, oldest first.
pub async fn history<C: ConnectionTrait>(
    conn: &C,
    order_id: Uuid,
) -> Result<Vec<history::Model>, DbErr> {
    history::Entity::find()
        .filter(history::Column::OrderId.eq(order_id))
        .order_by_asc(history::Column::Id)
        .all(conn)
        .await
}

/// The order's lines, by product id.
pub async fn lines<C: ConnectionTrait>(
    conn: &C,
    order_id: Uuid,
) -> Result<Vec<order_line::Model>, DbErr> {
    order_line::Entity::find()
        .filter(order_line::Column::OrderId.eq(order_id))
        .order_by_asc(order_line::Column::ProductId)
        .all(conn)
        .await
}

/// A status read back from the table; anything else is a corrupted row.
pub fn parse_status(s: &str) -> Result<OrderStatus, DbErr> {
    OrderStatus::parse(s).ok_or_else(|| DbErr::Custom(format!("unknown order status `{s}`")))
}

/// A history row; nothing reads it back in the transaction that writes it, so inside a worker's
/// batch it is written with the batch's other history rows (`db::insert_deferrable`).
async fn insert_history<C: WriteConnection>(
    conn: &C,
    order_id: Uuid,
    status: OrderStatus,
    reason: &str,
    event_id: Option<&str>,
) -> Result<(), DbErr> {
    let row = history_row(order_id, status, reason, event_id, chrono::Utc::now());
    db::insert_deferrable(conn, vec![row]).await
}

fn history_row(
    order_id: Uuid,
    status: OrderStatus,
    reason: &str,
    event_id: Option<&str>,
    at: chrono::DateTime<chrono::Utc>,
) -> history::ActiveModel {
    history::ActiveModel {
        id: NotSet,
        order_id: Set(order_id),
        status: Set(status.as_str().to_owned()),
        reason: Set(reason.chars().take(300).collect()),
        event_id: Set(event_id.map(str::to_owned)),
        at: Set(at),
    }
}

#[cfg(test)]
mod tests {
    use super::fee_cents;

    #[test]
    fn fee_is_rounded_half_up_to_whole_cents() {
        assert_eq!(fee_cents(1_000, 20), 200);
        assert_eq!(fee_cents(1, 20), 0); // 0.2 cents
        assert_eq!(fee_cents(3, 20), 1); // 0.6 cents
        assert_eq!(fee_cents(5, 10), 1); // 0.5 cents, half up
        assert_eq!(fee_cents(999, 0), 0);
        assert_eq!(fee_cents(i64::MAX, 100), i64::MAX);
    }
}
