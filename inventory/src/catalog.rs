//! Catalog changes (create, edit, deactivate) and the `product-changed` event each one enqueues
//! in the same transaction. Validation of the input happens in `http`; these functions take
//! checked values.

use common::{
    Envelope,
    db::{WriteConnection, outbox},
    events::ProductChanged,
};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, DbErr, EntityTrait, QueryFilter,
    sea_query::{Expr, ExprTrait},
};
use uuid::Uuid;

use crate::{SERVICE, entity::product, stock};

/// A product to create.
#[derive(Debug, Clone)]
pub struct NewProduct {
    pub name: String,
    pub description: String,
    pub price_cents: i64,
    pub stock: i64,
}

/// The catalog fields to change; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct ProductPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub price_cents: Option<i64>,
    pub active: Option<bool>,
}

/// Inserts a product (its initial stock as the first ledger row) and enqueues `product-changed`.
pub async fn create<C: WriteConnection>(
    conn: &C,
    new: NewProduct,
    correlation_id: &str,
) -> Result<product::Model, DbErr> {
    let now = chrono::Utc::now();
    let model = product::Entity::insert(product::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(new.name),
        description: Set(new.description),
        price_cents: Set(new.price_cents),
        stock: Set(new.stock),
        active: Set(true),
        revision: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_with_returning(conn)
    .await?;
    if model.stock != 0 {
        stock::record_movement(conn, model.id, model.stock, stock::REASON_INITIAL, None).await?;
    }
    announce(conn, &model, correlation_id).await?;
    Ok(model)
}

/// Applies `patch` and bumps the revision in one statement; `None` if there is no such product.
pub async fn update<C: WriteConnection>(
    conn: &C,
    id: Uuid,
    patch: ProductPatch,
    correlation_id: &str,
) -> Result<Option<product::Model>, DbErr> {
    let mut update = product::Entity::update_many()
        .col_expr(
            product::Column::Revision,
            Expr::col(product::Column::Revision).add(1),
        )
        .col_expr(product::Column::UpdatedAt, Expr::value(chrono::Utc::now()))
        .filter(product::Column::Id.eq(id));
    if let Some(name) = patch.name {
        update = update.col_expr(product::Column::Name, Expr::value(name));
    }
    if let Some(description) = patch.description {
        update = update.col_expr(product::Column::Description, Expr::value(description));
    }
    if let Some(price) = patch.price_cents {
        update = update.col_expr(product::Column::PriceCents, Expr::value(price));
    }
    if let Some(active) = patch.active {
        update = update.col_expr(product::Column::Active, Expr::value(active));
    }
    if update.exec(conn).await?.rows_affected == 0 {
        return Ok(None);
    }
    let Some(model) = product::Entity::find_by_id(id).one(conn).await? else {
        return Ok(None);
    };
    announce(conn, &model, correlation_id).await?;
    Ok(Some(model))
}

/// Soft delete: the product becomes inactive (kept for the ledger and old orders). Deleting an
/// inactive product changes nothing and publishes nothing. `None` if there is no such product.
pub async fn deactivate<C: WriteConnection>(
    conn: &C,
    id: Uuid,
    correlation_id: &str,
) -> Result<Option<product::Model>, DbErr> {
    let Some(current) = product::Entity::find_by_id(id).one(conn).await? else {
        return Ok(None);
    };
    if !current.active {
        return Ok(Some(current));
    }
    let patch = ProductPatch {
        active: Some(false),
        ..ProductPatch::default()
    };
    update(conn, id, patch, correlation_id).await
}

/// Enqueues `product-changed` for the product as it is now.
async fn announce<C: WriteConnection>(
    conn: &C,
    model: &product::Model,
    correlation_id: &str,
) -> Result<(), DbErr> {
    let payload = ProductChanged {
        product_id: model.id,
        name: model.name.clone(),
        price_cents: model.price_cents,
        active: model.active,
        revision: model.revision,
    };
    let envelope = Envelope::of_event(SERVICE, correlation_id, "", &payload)
        .map_err(|e| DbErr::Custom(format!("encode product-changed: {e}")))?;
    outbox::enqueue_event(conn, &envelope).await
}
