//! What the API answers with: an order with its lines (and, for one order, its history).

use std::collections::HashMap;

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    entity::{order, order_line, order_status_history},
    orders::{self, parse_status},
    status::OrderStatus,
};

/// An order.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Order)]
pub struct OrderView {
    pub id: Uuid,
    pub user_id: Uuid,
    pub status: OrderStatus,
    pub subtotal_cents: i64,
    /// `STORE_FEE_PERCENT` of the subtotal, rounded half up to whole cents.
    pub fee_cents: i64,
    pub total_cents: i64,
    pub items: Vec<LineView>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// Every status change and request, oldest first (`GET /orders/{id}` and cancel only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryEntry>>,
}

/// One product of an order, priced when the order was placed.
#[derive(Debug, Serialize, ToSchema)]
pub struct LineView {
    pub product_id: Uuid,
    pub name: String,
    pub quantity: i64,
    pub unit_price_cents: i64,
    pub line_total_cents: i64,
}

/// One entry of an order's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    /// The order's status after this entry.
    pub status: OrderStatus,
    #[schema(value_type = String, format = DateTime)]
    pub at: chrono::DateTime<chrono::Utc>,
    pub reason: String,
    /// The event that caused it; `null` for an HTTP request.
    pub event_id: Option<String>,
}

/// One page of orders, newest first.
pub type OrderPage = common::http::pagination::Paged<OrderView>;

impl From<order_line::Model> for LineView {
    fn from(l: order_line::Model) -> Self {
        Self {
            product_id: l.product_id,
            name: l.name,
            quantity: l.quantity,
            unit_price_cents: l.unit_price_cents,
            line_total_cents: l.line_total_cents,
        }
    }
}

impl TryFrom<order_status_history::Model> for HistoryEntry {
    type Error = DbErr;

    fn try_from(h: order_status_history::Model) -> Result<Self, DbErr> {
        Ok(Self {
            status: parse_status(&h.status)?,
            at: h.at,
            reason: h.reason,
            event_id: h.event_id,
        })
    }
}

impl OrderView {
    pub fn new(
        o: order::Model,
        lines: Vec<order_line::Model>,
        history: Option<Vec<order_status_history::Model>>,
    ) -> Result<Self, DbErr> {
        Ok(Self {
            id: o.id,
            user_id: o.user_id,
            status: parse_status(&o.status)?,
            subtotal_cents: o.subtotal_cents,
            fee_cents: o.fee_cents,
            total_cents: o.total_cents,
            items: lines.into_iter().map(LineView::from).collect(),
            created_at: o.created_at,
            updated_at: o.updated_at,
            history: history
                .map(|h| h.into_iter().map(HistoryEntry::try_from).collect())
                .transpose()?,
        })
    }

    /// The order with its lines and history, read back.
    pub async fn load<C: ConnectionTrait>(conn: &C, o: order::Model) -> Result<Self, DbErr> {
        let lines = orders::lines(conn, o.id).await?;
        let history = orders::history(conn, o.id).await?;
        Self::new(o, lines, Some(history))
    }

    /// Orders with their lines (one query for all lines), without history.
    pub async fn load_many<C: ConnectionTrait>(
        conn: &C,
        list: Vec<order::Model>,
    ) -> Result<Vec<Self>, DbErr> {
        let ids: Vec<Uuid> = list.iter().map(|o| o.id).collect();
        let mut by_order: HashMap<Uuid, Vec<order_line::Model>> = HashMap::new();
        if !ids.is_empty() {
            for line in order_line::Entity::find()
                .filter(order_line::Column::OrderId.is_in(ids))
                .order_by_asc(order_line::Column::ProductId)
                .all(conn)
                .await?
            {
                by_order.entry(line.order_id).or_default().push(line);
            }
        }
        list.into_iter()
            .map(|o| {
                let lines = by_order.remove(&o.id).unwrap_or_default();
                Self::new(o, lines, None)
            })
            .collect()
    }
}
