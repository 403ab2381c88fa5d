//! The inventory's own test helpers on the shared [`TestApp`] (`common::testing`): [`spawn_app`]
//! runs the library's `run` in process, [`spawn_inventory`] the real binary; [`InventoryApp`]
//! creates products through the API, waits for the `inventory` group, and reads the catalog and
//! the stock ledger.

use std::{ffi::OsStr, path::Path, process::Stdio};

use common::{
    Keys,
    testing::{Proc, RedisServer, service_command},
};
use inventory::{
    catalog::{self, NewProduct},
    entity::{product, stock_movement},
};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
};
use serde_json::Value;
use uuid::Uuid;

pub use common::testing::{TestApp, assert_problem};

/// Starts the inventory on `127.0.0.1:0` with its own Redis server, database and key prefix.
pub async fn spawn_app() -> TestApp {
    TestApp::spawn(common::service::run::<inventory::Inventory>).await
}

/// The inventory's domain helpers.
pub(crate) trait InventoryApp {
    /// Creates a product through the API; returns its JSON.
    async fn create_product(&self, name: &str, price_cents: i64, stock: i64) -> Value;
    async fn product(&self, id: Uuid) -> Option<product::Model>;
    async fn all_products(&self) -> Vec<product::Model>;
    async fn movements(&self, id: Uuid) -> Vec<stock_movement::Model>;
    /// Waits until the `inventory` group has handled everything on both of its streams and the
    /// outbox is empty.
    async fn settle(&self);
}

impl InventoryApp for TestApp {
    async fn create_product(&self, name: &str, price_cents: i64, stock: i64) -> Value {
        let response = self
            .send(
                reqwest::Method::POST,
                "/products",
                Some(&self.admin_token()),
                Some(serde_json::json!({
                    "name": name,
                    "description": format!("{name}, the finest"),
                    "price_cents": price_cents,
                    "stock": stock,
                })),
            )
            .await;
        assert_eq!(response.status(), 201, "create {name}");
        response.json().await.expect("product JSON")
    }

    async fn product(&self, id: Uuid) -> Option<product::Model> {
        product::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .expect("query product")
    }

    async fn all_products(&self) -> Vec<product::Model> {
        product::Entity::find().all(&self.db).await.expect("query")
    }

    async fn movements(&self, id: Uuid) -> Vec<stock_movement::Model> {
        movements(&self.db, id).await
    }

    async fn settle(&self) {
        self.wait_idle(
            inventory::worker::GROUP,
            &inventory::worker::routes().streams(),
        )
        .await;
    }
}

/// The ledger of a product, oldest first.
pub async fn movements(db: &DatabaseConnection, id: Uuid) -> Vec<stock_movement::Model> {
    stock_movement::Entity::find()
        .filter(stock_movement::Column::ProductId.eq(id))
        .order_by_asc(stock_movement::Column::Id)
        .all(db)
        .await
        .expect("query movements")
}

/// Inserts a product straight into the database (and its `product-changed` into the outbox).
pub async fn seed_product(db: &DatabaseConnection, stock: i64) -> product::Model {
    let txn = db.begin().await.expect("begin");
    let product = catalog::create(
        &txn,
        NewProduct {
            name: "seeded".into(),
            description: String::new(),
            price_cents: 1_000,
            stock,
        },
        "test",
    )
    .await
    .expect("seed product");
    txn.commit().await.expect("commit");
    product
}

/// Starts the real inventory binary, configured through its environment as in a deployment,
/// with `extra` variables on top.
pub fn spawn_inventory(
    redis: &RedisServer,
    db_url: &str,
    keys: &Keys,
    data: &Path,
    port: u16,
    extra: &[(&str, &OsStr)],
) -> Proc {
    let mut command = service_command(
        env!("CARGO_BIN_EXE_inventory"),
        &redis.url(),
        db_url,
        data,
        keys.prefix(),
    );
    command.env("MESH_LISTEN", format!("127.0.0.1:{port}"));
    for (name, value) in extra {
        command.env(name, value);
    }
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the inventory binary");
    Proc(child)
}
