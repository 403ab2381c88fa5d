//! The stock rules, shared by the HTTP API and the worker. Every change is one conditional
//! statement (`stock = stock - n WHERE … AND stock >= n`), never read-modify-write, so concurrent
//! replicas can never oversell; every change also writes a row to the movement ledger, so a
//! product's ledger always sums to its stock.

use std::collections::BTreeMap;

use common::db::{self, WriteConnection};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    sea_query::{Expr, ExprTrait},
};
use uuid::Uuid;

use crate::entity::{product, reservation, stock_movement, withdrawn_order};

/// Ledger reason of the stock a product was created with.
pub const REASON_INITIAL: &str = "initial";
/// Ledger reason of units taken by a paid order.
pub const REASON_RESERVED: &str = "reserved";
/// Ledger reason of units given back when a reserved order was refunded.
pub const REASON_RELEASED: &str = "released";

/// Why a stock adjustment was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdjustError {
    #[error("no product {0}")]
    NotFound(Uuid),
    #[error("product {product_id} has {stock} in stock; removing {remove} would make it negative")]
    WouldGoNegative {
        product_id: Uuid,
        stock: i64,
        remove: i64,
    },
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Appends one row to the ledger.
pub async fn record_movement<C: ConnectionTrait>(
    conn: &C,
    product_id: Uuid,
    delta: i64,
    reason: &str,
    order_id: Option<Uuid>,
) -> Result<stock_movement::Model, DbErr> {
    stock_movement::Entity::insert(movement(product_id, delta, reason, order_id))
        .exec_with_returning(conn)
        .await
}

/// Appends one row to the ledger of an order's stock; nothing reads it back in the transaction,
/// so inside a worker's batch it is written with the batch's other ledger rows
/// (`db::insert_deferrable`).
async fn record_order_movement<C: WriteConnection>(
    conn: &C,
    product_id: Uuid,
    delta: i64,
    reason: &str,
    order_id: Uuid,
) -> Result<(), DbErr> {
    let row = movement(product_id, delta, reason, Some(order_id));
    db::insert_deferrable(conn, vec![row]).await
}

fn movement(
    product_id: Uuid,
    delta: i64,
    reason: &str,
    order_id: Option<Uuid>,
) -> stock_movement::ActiveModel {
    stock_movement::ActiveModel {
        id: NotSet,
        product_id: Set(product_id),
        delta: Set(delta),
        reason: Set(reason.to_owned()),
        order_id: Set(order_id),
        created_at: Set(chrono::Utc::now()),
    }
}

/// Adds `delta` (signed) to a product's stock with a ledger row; a removal larger than the stock
/// changes nothing and says so.
pub async fn adjust<C: ConnectionTrait>(
    conn: &C,
    product_id: Uuid,
    delta: i64,
    reason: &str,
) -> Result<product::Model, AdjustError> {
    let mut update = product::Entity::update_many()
        .col_expr(
            product::Column::Stock,
            Expr::col(product::Column::Stock).add(delta),
        )
        .col_expr(product::Column::UpdatedAt, Expr::value(chrono::Utc::now()))
        .filter(product::Column::Id.eq(product_id));
    if delta < 0 {
        update = update.filter(product::Column::Stock.gte(-delta));
    }
    let updated = update.exec(conn).await?.rows_affected;
    if updated == 0 {
        return Err(
            match product::Entity::find_by_id(product_id).one(conn).await? {
                None => AdjustError::NotFound(product_id),
                Some(p) => AdjustError::WouldGoNegative {
                    product_id,
                    stock: p.stock,
                    remove: -delta,
                },
            },
        );
    }
    record_movement(conn, product_id, delta, reason, None).await?;
    product::Entity::find_by_id(product_id)
        .one(conn)
        .await?
        .ok_or(AdjustError::NotFound(product_id))
}

/// Quantities per product: an order naming a product on two lines reserves their sum. `None`
/// when a sum overflows (checked even though event bounds make it impossible: a wrapped sum
/// would reserve a negative quantity).
pub fn merge_lines(lines: impl IntoIterator<Item = (Uuid, i64)>) -> Option<BTreeMap<Uuid, i64>> {
    let mut merged = BTreeMap::new();
    for (product_id, quantity) in lines {
        let sum: &mut i64 = merged.entry(product_id).or_insert(0);
        *sum = sum.checked_add(quantity)?;
    }
    Some(merged)
}

/// Result of trying to reserve an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserve {
    /// Every line is reserved.
    Reserved,
    /// This product (unknown, inactive or short) could not cover its line. The caller must roll
    /// back whatever the earlier lines took.
    Short(Uuid),
}

/// Takes every line from stock inside `conn` (a transaction or savepoint the caller rolls back
/// on [`Reserve::Short`]). Products are visited in id order so concurrent orders lock rows in the
/// same order and cannot deadlock on PostgreSQL.
pub async fn reserve<C: WriteConnection>(
    conn: &C,
    order_id: Uuid,
    lines: &BTreeMap<Uuid, i64>,
) -> Result<Reserve, DbErr> {
    let now = chrono::Utc::now();
    for (&product_id, &quantity) in lines {
        let taken = product::Entity::update_many()
            .col_expr(
                product::Column::Stock,
                Expr::col(product::Column::Stock).sub(quantity),
            )
            .col_expr(product::Column::UpdatedAt, Expr::value(now))
            .filter(product::Column::Id.eq(product_id))
            .filter(product::Column::Stock.gte(quantity))
            .filter(product::Column::Active.eq(true))
            .exec(conn)
            .await?
            .rows_affected;
        if taken == 0 {
            return Ok(Reserve::Short(product_id));
        }
        reservation::Entity::insert(reservation::ActiveModel {
            order_id: Set(order_id),
            product_id: Set(product_id),
            quantity: Set(quantity),
            status: Set(reservation::RESERVED.to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .exec_without_returning(conn)
        .await?;
        record_order_movement(conn, product_id, -quantity, REASON_RESERVED, order_id).await?;
    }
    Ok(Reserve::Reserved)
}

/// Whether the order holds (or held) any reservation: an order is reserved at most once, even
/// if it is announced again under a new `event_id`.
pub async fn has_reservations<C: ConnectionTrait>(conn: &C, order_id: Uuid) -> Result<bool, DbErr> {
    Ok(reservation::Entity::find()
        .filter(reservation::Column::OrderId.eq(order_id))
        .one(conn)
        .await?
        .is_some())
}

/// Puts the order's reserved units back on the shelf; returns how many lines were released.
/// Each line flips `reserved → released` with a conditional update first, so two releases of the
/// same order (concurrent or not) give the stock back once.
pub async fn release<C: WriteConnection>(conn: &C, order_id: Uuid) -> Result<usize, DbErr> {
    let held = reservation::Entity::find()
        .filter(reservation::Column::OrderId.eq(order_id))
        .filter(reservation::Column::Status.eq(reservation::RESERVED))
        .all(conn)
        .await?;
    let now = chrono::Utc::now();
    let mut released = 0;
    for line in held {
        let flipped = reservation::Entity::update_many()
            .col_expr(
                reservation::Column::Status,
                Expr::value(reservation::RELEASED),
            )
            .col_expr(reservation::Column::UpdatedAt, Expr::value(now))
            .filter(reservation::Column::OrderId.eq(order_id))
            .filter(reservation::Column::ProductId.eq(line.product_id))
            .filter(reservation::Column::Status.eq(reservation::RESERVED))
            .exec(conn)
            .await?
            .rows_affected;
        if flipped == 0 {
            continue;
        }
        product::Entity::update_many()
            .col_expr(
                product::Column::Stock,
                Expr::col(product::Column::Stock).add(line.quantity),
            )
            .col_expr(product::Column::UpdatedAt, Expr::value(now))
            .filter(product::Column::Id.eq(line.product_id))
            .exec(conn)
            .await?;
        record_order_movement(
            conn,
            line.product_id,
            line.quantity,
            REASON_RELEASED,
            order_id,
        )
        .await?;
        released += 1;
    }
    Ok(released)
}

/// Marks an order as refunded before anything was reserved for it, so that its
/// `order-completed`, if it arrives later, takes no stock. Idempotent.
pub async fn withdraw<C: ConnectionTrait>(
    conn: &C,
    order_id: Uuid,
    reason: &str,
) -> Result<(), DbErr> {
    use sea_orm::ActiveValue::Set;
    let row = withdrawn_order::ActiveModel {
        order_id: Set(order_id),
        reason: Set(reason.to_owned()),
        created_at: Set(chrono::Utc::now().timestamp_millis()),
    };
    withdrawn_order::Entity::insert(row)
        .on_conflict_do_nothing()
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Serialises, until the end of the transaction, every handler working on one order: a refund
/// and the order's `order-completed` handled at the same moment must not each miss the other's
/// uncommitted write (the refund seeing no reservation, the reservation seeing no refund). On
/// PostgreSQL a transaction-scoped advisory lock keyed by the order; SQLite already runs one
/// writing transaction at a time.
pub async fn lock_order<C: ConnectionTrait>(conn: &C, order_id: Uuid) -> Result<(), DbErr> {
    if conn.get_database_backend() == sea_orm::DbBackend::Postgres {
        conn.execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            [format!("inventory-order:{order_id}").into()],
        ))
        .await?;
    }
    Ok(())
}

/// What was decided about an order before its `order-completed` was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prior {
    /// Its stock is reserved already.
    Reserved,
    /// It was refunded (withdrawn) before its stock was reserved.
    Withdrawn,
}

/// Whether the order has reservations or was withdrawn, in one statement (reservations win:
/// they were made before any withdrawal could be recorded).
pub async fn prior_outcome<C: ConnectionTrait>(
    conn: &C,
    order_id: Uuid,
) -> Result<Option<Prior>, DbErr> {
    use sea_orm::sea_query::Query;
    let first = common::db::first_existing(
        conn,
        vec![
            (
                "reserved",
                Query::select()
                    .from(reservation::Entity)
                    .and_where(reservation::Column::OrderId.eq(order_id))
                    .to_owned(),
            ),
            (
                "withdrawn",
                Query::select()
                    .from(withdrawn_order::Entity)
                    .and_where(withdrawn_order::Column::OrderId.eq(order_id))
                    .to_owned(),
            ),
        ],
    )
    .await?;
    Ok(match first {
        Some("reserved") => Some(Prior::Reserved),
        Some(_) => Some(Prior::Withdrawn),
        None => None,
    })
}
