//! `product-changed`: keep the catalog projection orders are priced from. Revisions are
//! monotonic per product, so an update applies only when its revision is newer than the one
//! held: a stale or replayed event can never roll a price back, whatever order they arrive in.

use common::{Envelope, db::inbox, events::ProductChanged, runtime::HandleError};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, TryInsertResult, sea_query::Expr,
};

use super::{GROUP, StoreHandler};
use crate::entity::catalog_product;

pub(super) async fn handle(
    h: &StoreHandler,
    envelope: &Envelope,
    product: ProductChanged,
) -> Result<(), HandleError> {
    let Some(txn) = inbox::begin_once(&h.db, GROUP, envelope).await? else {
        return Ok(());
    };
    let now = chrono::Utc::now();
    let inserted = catalog_product::Entity::insert(catalog_product::ActiveModel {
        product_id: Set(product.product_id),
        name: Set(product.name.clone()),
        price_cents: Set(product.price_cents),
        active: Set(product.active),
        revision: Set(product.revision),
        updated_at: Set(now),
    })
    .on_conflict_do_nothing()
    .exec_without_returning(&txn)
    .await?;
    let applied = if matches!(inserted, TryInsertResult::Inserted(n) if n > 0) {
        true
    } else {
        catalog_product::Entity::update_many()
            .col_expr(catalog_product::Column::Name, Expr::value(product.name))
            .col_expr(
                catalog_product::Column::PriceCents,
                Expr::value(product.price_cents),
            )
            .col_expr(catalog_product::Column::Active, Expr::value(product.active))
            .col_expr(
                catalog_product::Column::Revision,
                Expr::value(product.revision),
            )
            .col_expr(catalog_product::Column::UpdatedAt, Expr::value(now))
            .filter(catalog_product::Column::ProductId.eq(product.product_id))
            .filter(catalog_product::Column::Revision.lt(product.revision))
            .exec(&txn)
            .await?
            .rows_affected
            > 0
    };
    txn.commit().await?;
    tracing::debug!(
        product.id = %product.product_id,
        revision = product.revision,
        applied,
        "catalog projection"
    );
    Ok(())
}
