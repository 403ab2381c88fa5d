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
    testing::{InProcess, ServiceHome, TestApp, wait_until},
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

/// Waits until the inventory refuses `token` (a delete of a product that does not exist: 404
/// while the token is good, 401 once it is revoked, and nothing changes either way).
async fn refused_soon(http: &reqwest::Client, inventory: &InProcess, token: &str) {
    let url = inventory.url(&format!("/products/{}", uuid::Uuid::now_v7()));
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
        common::service::run_with::<user::User>(args, accounts, listener, shutdown)
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
    let inventory =
        InProcess::start(inventory_args, common::service::run::<inventory::Inventory>).await;
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

    // The revocation reaches the inventory on `token-revoked` (the user service's outbox, then
    // the inventory's follower): within moments, not a round trip per request.
    refused_soon(http, &inventory, &token).await;
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

    // A stolen refresh token replayed: every access token of the account dies on the
    // inventory as well, including the one from the latest log-in.
    let response = users
        .post(
            "/auth/login",
            &json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
        )
        .await;
    let session: Value = response.json().await.unwrap();
    let refresh = session["refresh_token"].as_str().unwrap().to_owned();
    for expected in [200, 401] {
        let response = users
            .post("/auth/refresh", &json!({"refresh_token": refresh}))
            .await;
        assert_eq!(response.status(), expected, "refresh, then its replay");
    }
    refused_soon(http, &inventory, &fresh).await;
    let response = create_product(http, &inventory, &fresh, "After the replay").await;
    assert_problem(response, 401).await;
    assert_eq!(product::Entity::find().count(&db).await.unwrap(), 2);

    // Each service stops cleanly on its own token.
    let result = inventory.stop(Duration::from_secs(20)).await;
    assert!(result.is_ok(), "inventory returned {result:?}");
    let result = users.stop(Duration::from_secs(20)).await;
    assert!(result.is_ok(), "user returned {result:?}");
}
