//! The money rules, shared by the HTTP API and the worker. A balance only changes through one
//! conditional statement (`balance = balance - n WHERE … AND balance >= n`), never
//! read-modify-write, so concurrent replicas can never overdraw a wallet. Every cent is
//! accounted for: opening credit + deposits = balances + captured − refunded.

use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    sea_query::{Expr, ExprTrait},
};
use uuid::Uuid;

use crate::entity::{cancelled_order, deposit, payment, wallet};

/// Opens `user_id`'s wallet with `credit_cents`; `false` if it was open already (the credit is
/// given once, however often the registration is announced).
pub async fn open_wallet<C: ConnectionTrait>(
    conn: &C,
    user_id: Uuid,
    credit_cents: i64,
) -> Result<bool, DbErr> {
    let now = chrono::Utc::now();
    let result = wallet::Entity::insert(wallet::ActiveModel {
        user_id: Set(user_id),
        balance_cents: Set(credit_cents),
        opening_credit_cents: Set(credit_cents),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .on_conflict_do_nothing()
    .exec_without_returning(conn)
    .await?;
    Ok(matches!(result, sea_orm::TryInsertResult::Inserted(n) if n > 0))
}

/// Takes `amount_cents` from the wallet if it holds that much; `false` if it does not (or does
/// not exist), and then nothing changed.
pub async fn debit<C: ConnectionTrait>(
    conn: &C,
    user_id: Uuid,
    amount_cents: i64,
) -> Result<bool, DbErr> {
    let updated = wallet::Entity::update_many()
        .col_expr(
            wallet::Column::BalanceCents,
            Expr::col(wallet::Column::BalanceCents).sub(amount_cents),
        )
        .col_expr(wallet::Column::UpdatedAt, Expr::value(chrono::Utc::now()))
        .filter(wallet::Column::UserId.eq(user_id))
        .filter(wallet::Column::BalanceCents.gte(amount_cents))
        .exec(conn)
        .await?
        .rows_affected;
    Ok(updated == 1)
}

/// Adds `amount_cents` to the wallet; `false` if there is no such wallet.
pub async fn credit<C: ConnectionTrait>(
    conn: &C,
    user_id: Uuid,
    amount_cents: i64,
) -> Result<bool, DbErr> {
    let updated = wallet::Entity::update_many()
        .col_expr(
            wallet::Column::BalanceCents,
            Expr::col(wallet::Column::BalanceCents).add(amount_cents),
        )
        .col_expr(wallet::Column::UpdatedAt, Expr::value(chrono::Utc::now()))
        .filter(wallet::Column::UserId.eq(user_id))
        .exec(conn)
        .await?
        .rows_affected;
    Ok(updated == 1)
}

/// Credits a deposit and records it in the ledger; `None` if the wallet is not open.
pub async fn deposit<C: ConnectionTrait>(
    conn: &C,
    user_id: Uuid,
    amount_cents: i64,
) -> Result<Option<deposit::Model>, DbErr> {
    if !credit(conn, user_id, amount_cents).await? {
        return Ok(None);
    }
    let row = deposit::Entity::insert(deposit::ActiveModel {
        id: NotSet,
        user_id: Set(user_id),
        amount_cents: Set(amount_cents),
        created_at: Set(chrono::Utc::now()),
    })
    .exec_with_returning(conn)
    .await?;
    Ok(Some(row))
}

/// The wallet of `user_id`, if open.
pub async fn wallet<C: ConnectionTrait>(
    conn: &C,
    user_id: Uuid,
) -> Result<Option<wallet::Model>, DbErr> {
    wallet::Entity::find_by_id(user_id).one(conn).await
}

/// What was decided about an order before its `order-placed` was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prior {
    /// Cancelled before payment saw it (a tombstone).
    Cancelled,
    /// It has a payment already.
    Paid,
}

/// Whether the order was cancelled before payment saw it or has a payment already, in one
/// statement (a tombstone wins: nothing is charged for a cancelled order).
pub async fn prior_outcome<C: ConnectionTrait>(
    conn: &C,
    order_id: Uuid,
) -> Result<Option<Prior>, DbErr> {
    use sea_orm::sea_query::Query;
    let first = common::db::first_existing(
        conn,
        vec![
            (
                "cancelled",
                Query::select()
                    .from(cancelled_order::Entity)
                    .and_where(cancelled_order::Column::OrderId.eq(order_id))
                    .to_owned(),
            ),
            (
                "paid",
                Query::select()
                    .from(payment::Entity)
                    .and_where(payment::Column::OrderId.eq(order_id))
                    .to_owned(),
            ),
        ],
    )
    .await?;
    Ok(match first {
        Some("cancelled") => Some(Prior::Cancelled),
        Some(_) => Some(Prior::Paid),
        None => None,
    })
}
