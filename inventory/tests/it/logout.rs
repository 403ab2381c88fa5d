//! Revocation across services: the user service and the inventory share one real `redis-server`
//! (one key prefix) and nothing else. The inventory knows the user service only through its JWKS
//! URL. An admin logs in on the user service, writes to the inventory with the access token, logs
//! out on the user service — and the inventory refuses the same token from then on, because it
//! follows the `token-revoked` stream that logout published to. A replayed refresh token kills
//! every access token of the account there too.

use std::time::Duration;

use common::{
    auth::{AuthArgs, keys::DEV_PRIVATE_KEY_FILE},
    config::MeshArgs,
    testing::{RedisServer, TestDb, unique_prefix, wait_until},
};
use inventory::entity::product;
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::support::assert_problem;

const ADMIN_EMAIL: &str = "boss@example.com";
const ADMIN_PASSWORD: &str = "boss-password-1";

async fn bind() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

async fn wait_ready(http: &reqwest::Client, base: &str, what: &str) {
    wait_until(Duration::from_secs(30), what, || async move {
        matches!(http.get(format!("{base}/readyz")).send().await, Ok(r) if r.status() == 200)
    })
    .await;
}

async fn login(http: &reqwest::Client, user_url: &str) -> String {
    let response = http
        .post(format!("{user_url}/auth/login"))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "admin log-in");
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// Waits until the inventory refuses `token` (a delete of a product that does not exist: 404
/// while the token is good, 401 once it is revoked, and nothing changes either way).
async fn refused_soon(http: &reqwest::Client, inventory_url: &str, token: &str) {
    let url = format!("{inventory_url}/products/{}", uuid::Uuid::now_v7());
    wait_until(
        Duration::from_secs(10),
        "revocation reached the inventory",
        || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let response = http.delete(url).bearer_auth(token).send().await.unwrap();
                response.status() == 401
            }
        },
    )
    .await;
}

async fn create_product(
    http: &reqwest::Client,
    inventory_url: &str,
    token: &str,
    name: &str,
) -> reqwest::Response {
    http.post(format!("{inventory_url}/products"))
        .bearer_auth(token)
        .json(&json!({"name": name, "price_cents": 1200, "stock": 2}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_token_logged_out_on_the_user_service_is_refused_by_the_inventory() {
    let redis = RedisServer::start();
    let prefix = unique_prefix();
    let shutdown = CancellationToken::new();
    let http = reqwest::Client::new();

    // The user service, signing with the dev key pair of its own data dir.
    let user_db = TestDb::new().await;
    let user_data = tempfile::tempdir().unwrap();
    let (listener, user_url) = bind().await;
    let user_args = MeshArgs {
        redis_url: redis.url(),
        database_url: Some(user_db.url.clone()),
        data_dir: user_data.path().to_path_buf(),
        stream_prefix: prefix.clone(),
        ..MeshArgs::default()
    };
    let accounts = user::UserArgs {
        admin_email: Some(ADMIN_EMAIL.into()),
        admin_password: Some(ADMIN_PASSWORD.into()),
        ..user::UserArgs::default()
    };
    let user_task = tokio::spawn(user::run_with(
        user_args,
        accounts,
        listener,
        shutdown.clone(),
    ));
    wait_ready(&http, &user_url, "user service ready").await;

    // The inventory, with a data dir of its own and the user service's JWKS URL.
    let inventory_db = TestDb::new().await;
    let inventory_data = tempfile::tempdir().unwrap();
    let (listener, inventory_url) = bind().await;
    let inventory_args = MeshArgs {
        redis_url: redis.url(),
        database_url: Some(inventory_db.url.clone()),
        data_dir: inventory_data.path().to_path_buf(),
        stream_prefix: prefix.clone(),
        auth: AuthArgs {
            jwks_url: Some(format!("{user_url}/.well-known/jwks.json")),
            ..AuthArgs::default()
        },
        ..MeshArgs::default()
    };
    let inventory_task = tokio::spawn(inventory::run(inventory_args, listener, shutdown.clone()));
    wait_ready(&http, &inventory_url, "inventory ready").await;
    assert!(
        !inventory_data.path().join(DEV_PRIVATE_KEY_FILE).exists(),
        "the inventory verifies with the user service's key, not a key pair of its own"
    );
    let db = common::db::connect(&inventory_db.url).await.unwrap();

    let token = login(&http, &user_url).await;
    let response = create_product(&http, &inventory_url, &token, "Before logout").await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();

    let logout = http
        .post(format!("{user_url}/auth/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);

    // The revocation reaches the inventory on `token-revoked` (the user service's outbox, then
    // the inventory's follower): within moments, not a round trip per request.
    refused_soon(&http, &inventory_url, &token).await;
    let body = assert_problem(
        create_product(&http, &inventory_url, &token, "After logout").await,
        401,
    )
    .await;
    assert_eq!(body["detail"], "token revoked");
    assert!(body["type"].as_str().unwrap().ends_with("/unauthorized"));
    let delete = http
        .delete(format!("{inventory_url}/products/{id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_problem(delete, 401).await;
    let products = product::Entity::find().all(&db).await.unwrap();
    assert_eq!(products.len(), 1);
    assert!(products[0].active, "the refused delete changed nothing");

    // Only that token is dead: a new log-in works on the inventory at once.
    let fresh = login(&http, &user_url).await;
    let response = create_product(&http, &inventory_url, &fresh, "New session").await;
    assert_eq!(response.status(), 201);
    assert_eq!(product::Entity::find().count(&db).await.unwrap(), 2);

    // A stolen refresh token replayed: every access token of the account dies on the
    // inventory as well, including the one from the latest log-in.
    let response = http
        .post(format!("{user_url}/auth/login"))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    let session: Value = response.json().await.unwrap();
    let refresh = session["refresh_token"].as_str().unwrap().to_owned();
    for expected in [200, 401] {
        let response = http
            .post(format!("{user_url}/auth/refresh"))
            .json(&json!({"refresh_token": refresh}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected, "refresh, then its replay");
    }
    refused_soon(&http, &inventory_url, &fresh).await;
    let response = create_product(&http, &inventory_url, &fresh, "After the replay").await;
    assert_problem(response, 401).await;
    assert_eq!(product::Entity::find().count(&db).await.unwrap(), 2);

    shutdown.cancel();
    for (name, task) in [("user", user_task), ("inventory", inventory_task)] {
        let result = tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .unwrap_or_else(|_| panic!("{name} did not stop"))
            .expect("run panicked");
        assert!(result.is_ok(), "{name} returned {result:?}");
    }
}
