//! The harness of the warehouse tests: [`spawn_app`] runs the library's `run` in process on a
//! free port with its own Redis server, database, data dir and key prefix; helpers mint tokens
//! with the dev key pair the service verifies with, publish events, wait for the group to settle,
//! and read streams and tables.

use std::{collections::HashMap, time::Duration};

use common::{
    Envelope, Keys,
    auth::{AuthArgs, JwtSigner, Role},
    config::MeshArgs,
    db::outbox,
    events::{Event, OrderLine, RefundOrder, RefundReason, StockReserved},
    runtime::{Publisher, redis_io},
    testing::{RedisServer, TestDb, unique_prefix, wait_drained, wait_until, xlen},
};
use redis::aio::ConnectionManager;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::Value;
use tempfile::TempDir;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use warehouse::{WarehouseArgs, entity::shipment};

/// One running service with its own Redis server, database, data dir and key prefix.
pub struct TestApp {
    pub base_url: String,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<anyhow::Result<()>>,
    pub http: reqwest::Client,
    pub keys: Keys,
    pub redis: ConnectionManager,
    pub db: DatabaseConnection,
    /// Signs tokens with the dev key pair the service verifies with.
    pub signer: JwtSigner,
    _redis_server: RedisServer,
    _data: TempDir,
    _db: TestDb,
}

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

/// Starts the service on `127.0.0.1:0` (the listener is passed in, as `main` does).
pub async fn spawn_app_with(settings: WarehouseArgs) -> TestApp {
    let redis_server = RedisServer::start();
    let test_db = TestDb::new().await;
    let data = tempfile::tempdir().expect("data dir");
    // Generated before the service starts, so both sides use the same dev key pair.
    let signer = JwtSigner::load(&AuthArgs::default(), data.path()).expect("dev key pair");
    let args = MeshArgs {
        redis_url: redis_server.url(),
        database_url: Some(test_db.url.clone()),
        data_dir: data.path().to_path_buf(),
        stream_prefix: unique_prefix(),
        ..MeshArgs::default()
    };
    let keys = Keys::new(args.stream_prefix.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base_url = format!("http://{}", listener.local_addr().expect("local addr"));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(warehouse::run_with(
        args,
        settings,
        listener,
        shutdown.clone(),
    ));
    let http = reqwest::Client::new();
    wait_until(Duration::from_secs(20), "service ready", || {
        let http = http.clone();
        let url = format!("{base_url}/readyz");
        async move { matches!(http.get(url).send().await, Ok(r) if r.status() == 200) }
    })
    .await;
    // The service migrated the database; this connection is the test's view of it.
    let db = common::db::connect(&test_db.url).await.expect("connect");
    TestApp {
        base_url,
        shutdown,
        task,
        http,
        keys,
        redis: redis_server.connection(),
        db,
        signer,
        _redis_server: redis_server,
        _data: data,
        _db: test_db,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// A request with an optional bearer token and JSON body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = self.http.request(method.clone(), self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub fn token(&self, role: Role) -> String {
        self.signer
            .issue(Uuid::now_v7(), role)
            .expect("issue token")
            .0
    }

    pub fn admin(&self) -> String {
        self.token(Role::Admin)
    }

    /// `POST /shipments/{id}/ship` as an admin.
    pub async fn ship(&self, id: Uuid) -> reqwest::Response {
        let path = format!("/shipments/{id}/ship");
        self.send(reqwest::Method::POST, &path, Some(&self.admin()), None)
            .await
    }

    /// `POST /shipments/{id}/fail` as an admin.
    pub async fn fail(&self, id: Uuid, reason: &str) -> reqwest::Response {
        let path = format!("/shipments/{id}/fail");
        let body = serde_json::json!({ "reason": reason });
        self.send(
            reqwest::Method::POST,
            &path,
            Some(&self.admin()),
            Some(body),
        )
        .await
    }

    /// The shipment of an order, from the database.
    pub async fn shipment_of(&self, order_id: Uuid) -> Option<shipment::Model> {
        shipment::Entity::find()
            .filter(shipment::Column::OrderId.eq(order_id))
            .one(&self.db)
            .await
            .expect("query shipment")
    }

    /// `GET /shipments/{id}` as an admin; the shipment's JSON.
    pub async fn shipment_of_id(&self, id: Uuid) -> Value {
        let path = format!("/shipments/{id}");
        let response = self
            .send(reqwest::Method::GET, &path, Some(&self.admin()), None)
            .await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("shipment JSON")
    }

    pub async fn all_shipments(&self) -> Vec<shipment::Model> {
        shipment::Entity::find()
            .all(&self.db)
            .await
            .expect("query shipments")
    }

    pub fn stream(&self, name: &str) -> String {
        self.keys.stream(name)
    }

    /// Waits until the outbox is empty: every event caused so far is on its stream.
    pub async fn flush_outbox(&self) {
        wait_until(Duration::from_secs(10), "outbox drained", || async {
            outbox::unsent(&self.db).await.expect("count outbox") == 0
        })
        .await;
    }

    /// Payloads of every event on stream `T::TYPE`, after flushing the outbox.
    pub async fn events<T: Event>(&self) -> Vec<(Envelope, T)> {
        self.flush_outbox().await;
        events::<T>(&mut self.redis.clone(), &self.keys).await
    }

    pub async fn publish<T: Event>(&self, envelope: &Envelope) {
        Publisher::new(self.redis.clone(), self.keys.clone())
            .publish(T::TYPE, envelope)
            .await
            .expect("publish");
    }

    /// Waits until the group has handled everything on both of its streams (its own
    /// `refund-order`s included) and the outbox is empty.
    pub async fn settle(&self) {
        for _ in 0..2 {
            self.flush_outbox().await;
            for stream in warehouse::worker::STREAMS {
                let key = self.stream(stream);
                // A stream nobody has written to has no group yet: nothing to wait for.
                if xlen(&mut self.redis.clone(), &key).await == 0 {
                    continue;
                }
                wait_drained(
                    &mut self.redis.clone(),
                    &key,
                    warehouse::worker::GROUP,
                    Duration::from_secs(20),
                )
                .await;
            }
        }
    }

    /// Publishes `event` and waits until the group has handled it.
    pub async fn deliver<T: Event>(&self, envelope: &Envelope) {
        self.publish::<T>(envelope).await;
        self.settle().await;
    }

    /// Cancels the token and waits for `run` to return, at most `within`.
    pub async fn stop(self, within: Duration) -> anyhow::Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(within, self.task)
            .await
            .unwrap_or_else(|_| panic!("run did not return within {within:?} of cancellation"))
            .expect("run panicked")
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

/// Every event on stream `T::TYPE`, decoded.
pub async fn events<T: Event>(conn: &mut ConnectionManager, keys: &Keys) -> Vec<(Envelope, T)> {
    let key = keys.stream(T::TYPE);
    let reply: redis::Value = redis::cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .expect("XRANGE");
    redis_io::parse_entries(&key, reply)
        .into_iter()
        .map(|entry| {
            let envelope = Envelope::from_fields(&entry.fields.expect("entry fields"))
                .expect("a valid envelope");
            let payload = envelope.payload::<T>().expect("a valid payload");
            (envelope, payload)
        })
        .collect()
}

/// Asserts a problem+json answer with `status`; returns its body.
pub async fn assert_problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "status of {}", response.url());
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem JSON");
    assert_eq!(body["status"], status);
    assert!(body["type"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(body["title"].is_string() && body["detail"].is_string());
    body
}

/// Entry counts of the warehouse's output streams, for "nothing was published" checks.
pub async fn published(app: &TestApp) -> HashMap<&'static str, u64> {
    app.flush_outbox().await;
    let mut out = HashMap::new();
    for name in [
        common::events::OrderShipped::TYPE,
        common::events::RefundOrder::TYPE,
    ] {
        out.insert(name, xlen(&mut app.redis.clone(), &app.stream(name)).await);
    }
    out
}
