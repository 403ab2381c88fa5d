//! The harness of the store tests: [`spawn_app`] runs the library's `run` in process on a free
//! port with its own Redis server, database, data dir and key prefix; helpers mint tokens with
//! the dev key pair the service verifies with, feed the catalog projection through
//! `product-changed`, publish saga events, and read streams and tables.

use std::time::Duration;

use common::{
    Envelope, Keys,
    auth::{AuthArgs, JwtSigner, Role},
    config::MeshArgs,
    db::outbox,
    events::{Event, ProductChanged},
    runtime::{Publisher, redis_io},
    testing::{RedisServer, TestDb, unique_prefix, wait_drained, wait_until, xlen},
};
use redis::aio::ConnectionManager;
use sea_orm::{DatabaseConnection, EntityTrait, PaginatorTrait};
use serde_json::{Value, json};
use store::{
    entity::{catalog_product, order, order_status_history},
    orders,
    status::OrderStatus,
};
use tempfile::TempDir;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// One running service with its own Redis server, database, data dir and key prefix.
pub struct TestApp {
    pub base_url: String,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<anyhow::Result<()>>,
    pub http: reqwest::Client,
    pub keys: Keys,
    pub conn: ConnectionManager,
    pub db: DatabaseConnection,
    /// Signs tokens with the dev key pair the service verifies with.
    pub signer: JwtSigner,
    pub redis: RedisServer,
    _data: TempDir,
    _db: TestDb,
}

/// Starts the service on `127.0.0.1:0` (the listener is passed in, as `main` does) and waits
/// until it is ready.
pub async fn spawn_app() -> TestApp {
    let redis = RedisServer::start();
    let test_db = TestDb::new().await;
    let data = tempfile::tempdir().expect("data dir");
    // Generated before the service starts, so both sides use the same dev key pair.
    let signer = JwtSigner::load(&AuthArgs::default(), data.path()).expect("dev key pair");
    let args = MeshArgs {
        redis_url: redis.url(),
        database_url: Some(test_db.url.clone()),
        data_dir: data.path().to_path_buf(),
        stream_prefix: unique_prefix(),
        ..MeshArgs::default()
    };
    let keys = Keys::new(args.stream_prefix.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base_url = format!("http://{}", listener.local_addr().expect("local addr"));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(store::run(args, listener, shutdown.clone()));
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
        conn: redis.connection(),
        db,
        signer,
        redis,
        _data: data,
        _db: test_db,
    }
}

/// A shopper: their id and access token.
pub struct Shopper {
    pub id: Uuid,
    pub token: String,
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

    /// A GET with a bearer token.
    pub async fn get_as(&self, token: &str, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// A POST with an optional token, JSON body and extra headers.
    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self.http.post(self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    pub fn shopper(&self) -> Shopper {
        self.user_with(Role::User)
    }

    pub fn admin(&self) -> Shopper {
        self.user_with(Role::Admin)
    }

    fn user_with(&self, role: Role) -> Shopper {
        let id = Uuid::now_v7();
        let token = self.signer.issue(id, role).expect("issue token").0;
        Shopper { id, token }
    }

    /// Places an order of `(product, quantity)` lines; asserts 201 and returns the order JSON.
    pub async fn place(&self, who: &Shopper, lines: &[(Uuid, i64)]) -> Value {
        let response = self
            .post("/orders", Some(&who.token), Some(items(lines)), &[])
            .await;
        assert_eq!(response.status(), 201, "place order");
        response.json().await.expect("order JSON")
    }

    /// Publishes `product-changed` and waits until the projection holds that revision (or a
    /// newer one).
    pub async fn catalog(&self, product: &ProductChanged) {
        self.publish(
            &Envelope::new(ProductChanged::TYPE, "inventory", "seed", "", product).unwrap(),
        )
        .await;
        self.settle().await;
    }

    /// A product in the projection, active, at revision 1.
    pub async fn seed_product(&self, name: &str, price_cents: i64) -> Uuid {
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

    pub async fn catalog_product(&self, id: Uuid) -> Option<catalog_product::Model> {
        catalog_product::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .expect("query catalog")
    }

    pub async fn order(&self, id: Uuid) -> order::Model {
        order::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .expect("query order")
            .expect("order exists")
    }

    pub async fn status(&self, id: Uuid) -> OrderStatus {
        OrderStatus::parse(&self.order(id).await.status).expect("known status")
    }

    pub async fn history(&self, id: Uuid) -> Vec<order_status_history::Model> {
        orders::history(&self.db, id).await.expect("history")
    }

    pub async fn order_count(&self) -> u64 {
        order::Entity::find().count(&self.db).await.expect("count")
    }

    pub fn stream(&self, name: &str) -> String {
        self.keys.stream(name)
    }

    /// Publishes an event on its stream.
    pub async fn publish(&self, envelope: &Envelope) {
        Publisher::new(self.conn.clone(), self.keys.clone())
            .publish(&envelope.event_type, envelope)
            .await
            .expect("publish");
    }

    /// Waits until the outbox is empty: every event caused so far is on its stream.
    pub async fn flush_outbox(&self) {
        wait_until(Duration::from_secs(10), "outbox drained", || async {
            outbox::unsent(&self.db).await.expect("count outbox") == 0
        })
        .await;
    }

    /// Waits until the `store` group has handled everything on its streams and the outbox is
    /// empty (twice: the store consumes its own `refund-order`).
    pub async fn settle(&self) {
        for _ in 0..2 {
            self.flush_outbox().await;
            for stream in store::worker::STREAMS {
                wait_drained(
                    &mut self.conn.clone(),
                    &self.stream(stream),
                    store::worker::GROUP,
                    Duration::from_secs(20),
                )
                .await;
            }
        }
    }

    /// Every event on stream `T::TYPE`, decoded, after flushing the outbox.
    pub async fn events<T: Event>(&self) -> Vec<(Envelope, T)> {
        self.flush_outbox().await;
        let key = self.stream(T::TYPE);
        let reply: redis::Value = redis::cmd("XRANGE")
            .arg(&key)
            .arg("-")
            .arg("+")
            .query_async(&mut self.conn.clone())
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

    pub async fn dead_letters(&self) -> u64 {
        xlen(&mut self.conn.clone(), &self.keys.dead_letter()).await
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
