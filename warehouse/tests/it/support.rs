//! The warehouse's own test helpers on the shared [`TestApp`] (`common::testing`): [`spawn_app`]
//! runs the library's `run_with` in process (with auto-dispatch on or off); [`WarehouseApp`]
//! delivers events and waits for the `warehouse` group, ships and fails shipments as an admin,
//! and reads the shipments; [`reserved_order`] and [`refund`] build the events it consumes.

use std::collections::HashMap;

use common::{
    Envelope,
    events::{Event, OrderLine, OrderShipped, RefundOrder, RefundReason, StockReserved},
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;
use uuid::Uuid;
use warehouse::{WarehouseArgs, entity::shipment};

pub use common::testing::{TestApp, assert_problem};

/// Starts the service with the default settings (auto-dispatch on).
pub async fn spawn_app() -> TestApp {
    spawn_app_with(WarehouseArgs::default()).await
}

/// Starts the service with auto-dispatch off: shipments wait for an admin.
pub async fn spawn_manual_app() -> TestApp {
    spawn_app_with(WarehouseArgs {
        auto_dispatch: false,
        ..WarehouseArgs::default()
    })
    .await
}

/// Starts the warehouse on `127.0.0.1:0` with its own Redis server, database and key prefix.
pub async fn spawn_app_with(settings: WarehouseArgs) -> TestApp {
    TestApp::spawn(|args, listener, shutdown| {
        common::service::run_with::<warehouse::Warehouse>(args, settings, listener, shutdown)
    })
    .await
}

/// The warehouse's domain helpers.
pub(crate) trait WarehouseApp {
    /// `POST /shipments/{id}/ship` as an admin.
    async fn ship(&self, id: Uuid) -> reqwest::Response;
    /// `POST /shipments/{id}/fail` as an admin.
    async fn fail(&self, id: Uuid, reason: &str) -> reqwest::Response;
    /// The shipment of an order, from the database.
    async fn shipment_of(&self, order_id: Uuid) -> Option<shipment::Model>;
    /// `GET /shipments/{id}` as an admin; the shipment's JSON.
    async fn shipment_of_id(&self, id: Uuid) -> Value;
    async fn all_shipments(&self) -> Vec<shipment::Model>;
    /// Waits until the `warehouse` group has handled everything on both of its streams (its own
    /// `refund-order`s included) and the outbox is empty.
    async fn settle(&self);
    /// Publishes an event and waits until the group has handled it.
    async fn deliver(&self, envelope: &Envelope);
    /// Entry counts of the warehouse's output streams, for "nothing was published" checks.
    async fn published(&self) -> HashMap<String, u64>;
}

impl WarehouseApp for TestApp {
    async fn ship(&self, id: Uuid) -> reqwest::Response {
        let path = format!("/shipments/{id}/ship");
        self.send(
            reqwest::Method::POST,
            &path,
            Some(&self.admin_token()),
            None,
        )
        .await
    }

    async fn fail(&self, id: Uuid, reason: &str) -> reqwest::Response {
        let path = format!("/shipments/{id}/fail");
        let body = serde_json::json!({ "reason": reason });
        self.send(
            reqwest::Method::POST,
            &path,
            Some(&self.admin_token()),
            Some(body),
        )
        .await
    }

    async fn shipment_of(&self, order_id: Uuid) -> Option<shipment::Model> {
        shipment::Entity::find()
            .filter(shipment::Column::OrderId.eq(order_id))
            .one(&self.db)
            .await
            .expect("query shipment")
    }

    async fn shipment_of_id(&self, id: Uuid) -> Value {
        let path = format!("/shipments/{id}");
        let response = self.get_as(&path, &self.admin_token()).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("shipment JSON")
    }

    async fn all_shipments(&self) -> Vec<shipment::Model> {
        shipment::Entity::find()
            .all(&self.db)
            .await
            .expect("query shipments")
    }

    async fn settle(&self) {
        self.wait_idle(
            warehouse::worker::GROUP,
            &warehouse::worker::routes().streams(),
        )
        .await;
    }

    async fn deliver(&self, envelope: &Envelope) {
        self.publish(envelope).await;
        self.settle().await;
    }

    async fn published(&self) -> HashMap<String, u64> {
        self.stream_lengths(&[OrderShipped::TYPE, RefundOrder::TYPE])
            .await
    }
}

/// A `stock-reserved` event of a new order with two lines.
pub fn reserved_order() -> (Envelope, StockReserved) {
    let order = StockReserved {
        order_id: Uuid::now_v7(),
        user_id: Uuid::now_v7(),
        items: vec![
            OrderLine {
                product_id: Uuid::now_v7(),
                quantity: 2,
                unit_price_cents: 1_250,
            },
            OrderLine {
                product_id: Uuid::now_v7(),
                quantity: 1,
                unit_price_cents: 400,
            },
        ],
    };
    let envelope = Envelope::new(StockReserved::TYPE, "inventory", "req-7", "", &order).unwrap();
    (envelope, order)
}

/// A `refund-order` event for `order`.
pub fn refund(order: &StockReserved, reason: RefundReason) -> Envelope {
    let payload = RefundOrder {
        order_id: order.order_id,
        user_id: order.user_id,
        reason,
    };
    Envelope::new(RefundOrder::TYPE, "store", "req-8", "", &payload).unwrap()
}
