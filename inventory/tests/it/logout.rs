//! Logout across services: the user service and the inventory share one real `redis-server`
//! (one key prefix) and nothing else. The inventory knows the user service only through its JWKS
//! URL. An admin logs in on the user service, writes to the inventory with the access token, logs
//! out on the user service — and the inventory refuses the same token from then on, because it
//! checks the denylist that logout wrote.

use std::time::Duration;

use common::{
    auth::{AuthArgs, keys::DEV_PRIVATE_KEY_FILE},
    config::MeshArgs,
    testing::{InProcess, ServiceHome, TestApp},
};
use inventory::entity::product;
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};

use crate::support::assert_problem;

const ADMIN_EMAIL: &str = "boss@example.com";
const ADMIN_PASSWORD: &str = "boss-password-1";

async fn login(users: &TestApp) -> String {
    let response = users
        .post(
            "/auth/login",
            &json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), 200, "admin log-in");
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn create_product(
    http: &reqwest::Client,
    inventory: &InProcess,
    token: &str,
    name: &str,
) -> reqwest::Response {
    http.post(inventory.url("/products"))
        .bearer_auth(token)
        .json(&json!({"name": name, "price_cents": 1200, "stock": 2}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_token_logged_out_on_the_user_service_is_refused_by_the_inventory() {
    // The user service, with the Redis server and key prefix of the test, signing with the dev
    // key pair of its own data dir.
    let accounts = user::UserArgs {
        admin_email: Some(ADMIN_EMAIL.into()),
        admin_password: Some(ADMIN_PASSWORD.into()),
        ..user::UserArgs::default()
    };
    let users = TestApp::spawn(|args, listener, shutdown| {
        user::run_with(args, accounts, listener, shutdown)
    })
    .await;
    let http = &users.http;

    // The inventory on the same Redis server and prefix, with a data dir of its own and the user
    // service's JWKS URL.
    let home = ServiceHome::new().await;
    let inventory_args = MeshArgs {
        auth: AuthArgs {
            jwks_url: Some(users.url("/.well-known/jwks.json")),
            ..AuthArgs::default()
        },
        ..home.args(users.redis_server.url(), users.keys.prefix())
    };
    let inventory = InProcess::start(inventory_args, inventory::run).await;
    assert!(
        !home.data.path().join(DEV_PRIVATE_KEY_FILE).exists(),
        "the inventory verifies with the user service's key, not a key pair of its own"
    );
    let db = common::db::connect(&home.test_db.url).await.unwrap();

    let token = login(&users).await;
    let response = create_product(http, &inventory, &token, "Before logout").await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();

    let logout = users
        .send(reqwest::Method::POST, "/auth/logout", Some(&token), None)
        .await;
    assert_eq!(logout.status(), 204);

    // The very next request on the inventory: refused, and nothing written.
    let body = assert_problem(
        create_product(http, &inventory, &token, "After logout").await,
        401,
    )
    .await;
    assert_eq!(body["detail"], "token revoked");
    assert!(body["type"].as_str().unwrap().ends_with("/unauthorized"));
    let delete = http
        .delete(inventory.url(&format!("/products/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_problem(delete, 401).await;
    let products = product::Entity::find().all(&db).await.unwrap();
    assert_eq!(products.len(), 1);
    assert!(products[0].active, "the refused delete changed nothing");

    // Only that token is dead: a new log-in works on the inventory at once.
    let fresh = login(&users).await;
    let response = create_product(http, &inventory, &fresh, "New session").await;
    assert_eq!(response.status(), 201);
    assert_eq!(product::Entity::find().count(&db).await.unwrap(), 2);

    // Each service stops cleanly on its own token.
    let result = inventory.stop(Duration::from_secs(20)).await;
    assert!(result.is_ok(), "inventory returned {result:?}");
    let result = users.stop(Duration::from_secs(20)).await;
    assert!(result.is_ok(), "user returned {result:?}");
}
