//! Where the inventory finds the public key it verifies access tokens with, configured as in a
//! deployment: the environment of the real binary names a PEM file (`MESH_JWT_PUBLIC_KEY_FILE`)
//! or holds the PEM text itself (`MESH_JWT_PUBLIC_KEY`). Tokens of the matching private key are
//! accepted; tokens of any other key — among them one of a dev key pair in the service's own data
//! dir, which it must not have fallen back to — are 401 problems and change nothing.

use std::{ffi::OsStr, path::PathBuf, time::Duration};

use common::{
    Keys,
    auth::{AuthArgs, JwtSigner, Role, ensure_dev_keypair, keys::DEV_PRIVATE_KEY_FILE},
    testing::{RedisServer, TestDb, free_port, unique_prefix, wait_ready},
};
use inventory::entity::product;
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{assert_problem, spawn_inventory};

/// The signer of the user service in some other place: its own key pair, of which the
/// inventory only gets the public half.
struct Issuer {
    signer: JwtSigner,
    public_key_file: PathBuf,
    _dir: tempfile::TempDir,
}

fn issuer() -> Issuer {
    let dir = tempfile::tempdir().unwrap();
    let pair = ensure_dev_keypair(dir.path()).unwrap();
    let signer = JwtSigner::load(&AuthArgs::default(), dir.path()).unwrap();
    Issuer {
        signer,
        public_key_file: pair.public_key_file,
        _dir: dir,
    }
}

fn admin_token(signer: &JwtSigner) -> String {
    signer.issue(Uuid::now_v7(), Role::Admin).unwrap().0
}

/// Runs the binary with `variable` = `value` and checks who it believes.
async fn verifies_only_the_configured_key(issuer: &Issuer, variable: &str, value: &OsStr) {
    let redis = RedisServer::start();
    let test_db = TestDb::new().await;
    let keys = Keys::new(unique_prefix());
    let data = tempfile::tempdir().unwrap();
    // A dev key pair in the service's data dir, as a laptop would have: with a key configured,
    // the service must ignore it.
    let dev = JwtSigner::load(&AuthArgs::default(), data.path()).unwrap();
    let port = free_port();
    let mut service = spawn_inventory(
        &redis,
        &test_db.url,
        &keys,
        data.path(),
        port,
        &[(variable, value)],
    );
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&http, &base, Duration::from_secs(30)).await;
    let db = common::db::connect(&test_db.url).await.unwrap();

    let elsewhere = tempfile::tempdir().unwrap();
    let stranger = JwtSigner::load(&AuthArgs::default(), elsewhere.path()).unwrap();
    for (who, token) in [
        ("dev key of the data dir", admin_token(&dev)),
        ("another key", admin_token(&stranger)),
    ] {
        let response = http
            .post(format!("{base}/products"))
            .bearer_auth(&token)
            .json(&json!({"name": who, "price_cents": 100}))
            .send()
            .await
            .unwrap();
        let body = assert_problem(response, 401).await;
        assert_eq!(body["detail"], "invalid token", "{who}");
    }
    assert_eq!(product::Entity::find().count(&db).await.unwrap(), 0);

    let response = http
        .post(format!("{base}/products"))
        .bearer_auth(admin_token(&issuer.signer))
        .json(&json!({"name": "Teapot", "price_cents": 2500, "stock": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{variable}");
    let created: Value = response.json().await.unwrap();
    let id: Uuid = created["id"].as_str().unwrap().parse().unwrap();

    // A stock write with the wrong key changes nothing either.
    let response = http
        .post(format!("{base}/products/{id}/stock"))
        .bearer_auth(admin_token(&stranger))
        .json(&json!({"delta": -3, "reason": "theft"}))
        .send()
        .await
        .unwrap();
    assert_problem(response, 401).await;
    let stored = product::Entity::find_by_id(id).one(&db).await.unwrap();
    assert_eq!(stored.map(|p| p.stock), Some(3));
    assert_eq!(product::Entity::find().count(&db).await.unwrap(), 1);

    service.stop_cleanly(Duration::from_secs(30)).await;
}

#[tokio::test]
async fn the_public_key_is_read_from_the_file_named_by_mesh_jwt_public_key_file() {
    let issuer = issuer();
    verifies_only_the_configured_key(
        &issuer,
        "MESH_JWT_PUBLIC_KEY_FILE",
        issuer.public_key_file.as_os_str(),
    )
    .await;
}

#[tokio::test]
async fn the_public_key_is_read_from_the_pem_in_mesh_jwt_public_key() {
    let issuer = issuer();
    let pem = issuer.signer.public_key_pem().unwrap();
    verifies_only_the_configured_key(&issuer, "MESH_JWT_PUBLIC_KEY", OsStr::new(&pem)).await;
}

#[tokio::test]
async fn a_configured_public_key_generates_no_dev_key_pair() {
    let issuer = issuer();
    let redis = RedisServer::start();
    let test_db = TestDb::new().await;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut service = spawn_inventory(
        &redis,
        &test_db.url,
        &Keys::new(unique_prefix()),
        data.path(),
        port,
        &[(
            "MESH_JWT_PUBLIC_KEY_FILE",
            issuer.public_key_file.as_os_str(),
        )],
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&reqwest::Client::new(), &base, Duration::from_secs(30)).await;
    assert!(!data.path().join(DEV_PRIVATE_KEY_FILE).exists());
    service.stop_cleanly(Duration::from_secs(30)).await;
}
