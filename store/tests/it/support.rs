//! The store's own test helpers on the shared [`TestApp`] (`common::testing`): [`spawn_app`]
//! runs the library's `run` in process; [`StoreApp`] feeds the catalog projection through
//! `product-changed`, places orders, waits for the `store` group, and reads the order tables.

use common::{
    Envelope,
    events::{Event, ProductChanged},
    testing::Caller,
};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};
use store::{
    entity::{catalog_product, order, order_status_history},
    orders,
    status::OrderStatus,
};
use uuid::Uuid;

pub use common::testing::{TestApp, assert_problem};

/// Starts the store on `127.0.0.1:0` with its own Redis server, database and key prefix.
pub async fn spawn_app() -> TestApp {
    TestApp::spawn(common::service::run::<store::Store>).await
}

/// The store's domain helpers.
pub(crate) trait StoreApp {
    /// Places an order of `(product, quantity)` lines; asserts 201 and returns the order JSON.
    async fn place(&self, who: &Caller, lines: &[(Uuid, i64)]) -> Value;
    /// Publishes `product-changed` and waits until the projection holds that revision (or a
    /// newer one).
    async fn catalog(&self, product: &ProductChanged);
    /// A product in the projection, active, at revision 1.
    async fn seed_product(&self, name: &str, price_cents: i64) -> Uuid;
    async fn catalog_product(&self, id: Uuid) -> Option<catalog_product::Model>;
    async fn order(&self, id: Uuid) -> order::Model;
    async fn status(&self, id: Uuid) -> OrderStatus;
    async fn history(&self, id: Uuid) -> Vec<order_status_history::Model>;
    async fn order_count(&self) -> u64;
    /// Waits until the `store` group has handled everything on its streams and the outbox is
    /// empty.
    async fn settle(&self);
}

impl StoreApp for TestApp {
    async fn place(&self, who: &Caller, lines: &[(Uuid, i64)]) -> Value {
        let response = self
            .send(
                reqwest::Method::POST,
                "/orders",
                Some(&who.token),
                Some(items(lines)),
            )
            .await;
        assert_eq!(response.status(), 201, "place order");
        response.json().await.expect("order JSON")
    }

    async fn catalog(&self, product: &ProductChanged) {
        self.publish(
            &Envelope::new(ProductChanged::TYPE, "inventory", "seed", "", product).unwrap(),
        )
        .await;
        self.settle().await;
    }

    async fn seed_product(&self, name: &str, price_cents: i64) -> Uuid {
        let product_id = Uuid::now_v7();
        self.catalog(&ProductChanged {
            product_id,
            name: name.into(),
            price_cents,
            active: true,
            revision: 1,
        })
        .await;
        assert!(self.catalog_product(product_id).await.is_some());
        product_id
    }

    async fn catalog_product(&self, id: Uuid) -> Option<catalog_product::Model> {
        catalog_product::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .expect("query catalog")
    }

    async fn order(&self, id: Uuid) -> order::Model {
        order::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .expect("query order")
            .expect("order exists")
    }

    async fn status(&self, id: Uuid) -> OrderStatus {
        OrderStatus::parse(&self.order(id).await.status).expect("known status")
    }

    async fn history(&self, id: Uuid) -> Vec<order_status_history::Model> {
        orders::history(&self.db, id).await.expect("history")
    }

    async fn order_count(&self) -> u64 {
        order::Entity::find().count(&self.db).await.expect("count")
    }

    async fn settle(&self) {
        self.wait_idle(store::worker::GROUP, &store::worker::routes().streams())
            .await;
    }
}

/// A `POST /orders` body.
pub fn items(lines: &[(Uuid, i64)]) -> Value {
    json!({
        "items": lines
            .iter()
            .map(|(id, q)| json!({"product_id": id, "quantity": q}))
            .collect::<Vec<_>>()
    })
}

/// The id of an order JSON.
pub fn id_of(order: &Value) -> Uuid {
    order["id"]
        .as_str()
        .expect("order id")
        .parse()
        .expect("uuid")
}
