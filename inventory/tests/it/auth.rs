//! Token attacks on the inventory's admin endpoints: each forged, stale or revoked token is a
//! 401 problem and creates nothing. The tokens are verified locally with the public key.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use common::auth::{AuthArgs, Claims, JwtSigner, Role};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::support::{InventoryApp, TestApp, assert_problem, spawn_app};

fn claims(role: Role, exp_in_secs: i64) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        sub: Uuid::now_v7(),
        role,
        jti: Uuid::new_v4().simple().to_string(),
        exp: now + exp_in_secs,
        iat: now,
    }
}

fn b64(value: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// Every attack, by name.
async fn forged_tokens(app: &TestApp) -> Vec<(&'static str, String)> {
    let admin_claims = serde_json::to_value(claims(Role::Admin, 600)).unwrap();

    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&admin_claims)
    );

    // Algorithm confusion: HMAC keyed with the (public) verification key.
    let public_pem = app.signer.public_key_pem().unwrap();
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &admin_claims,
        &jsonwebtoken::EncodingKey::from_secret(public_pem.as_bytes()),
    )
    .unwrap();

    let expired = app.signer.sign(&claims(Role::Admin, -3600)).unwrap();

    let elsewhere = tempfile::tempdir().unwrap();
    let stranger = JwtSigner::load(&AuthArgs::default(), elsewhere.path()).unwrap();
    let wrong_key = stranger.issue(Uuid::now_v7(), Role::Admin).unwrap().0;

    // A genuine user token whose payload is rewritten to say admin; the signature no longer fits.
    let (user_token, user_claims) = app.signer.issue(Uuid::now_v7(), Role::User).unwrap();
    let mut promoted = serde_json::to_value(&user_claims).unwrap();
    promoted["role"] = json!("admin");
    let parts: Vec<&str> = user_token.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], b64(&promoted), parts[2]);

    // A genuine admin token after logout.
    let (revoked, revoked_claims) = app.signer.issue(Uuid::now_v7(), Role::Admin).unwrap();
    app.signer
        .verifier()
        .with_denylist(app.redis.clone(), app.keys.clone())
        .revoke(&revoked_claims)
        .await
        .unwrap();

    vec![
        ("alg none", alg_none),
        ("HS256 with the public key", hs256),
        ("expired", expired),
        ("wrong key", wrong_key),
        ("tampered payload", tampered),
        ("denylisted", revoked),
    ]
}

#[tokio::test]
async fn forged_expired_and_revoked_tokens_are_rejected_by_inventory() {
    let app = spawn_app().await;
    let product = app.create_product("Vase", 5000, 2).await;
    let id = product["id"].as_str().unwrap().to_owned();
    let before = app.stream_lengths(&["product-changed"]).await;

    for (attack, token) in forged_tokens(&app).await {
        let create = app
            .send(
                Method::POST,
                "/products",
                Some(&token),
                Some(json!({"name": attack, "price_cents": 1})),
            )
            .await;
        let problem = assert_problem(create, 401).await;
        assert!(problem["detail"].is_string(), "{attack}");
        let adjust = app
            .send(
                Method::POST,
                &format!("/products/{id}/stock"),
                Some(&token),
                Some(json!({"delta": -2, "reason": attack})),
            )
            .await;
        assert_problem(adjust, 401).await;
    }

    let products = app.all_products().await;
    assert_eq!(products.len(), 1);
    assert_eq!(products[0].stock, 2);
    assert_eq!(app.stream_lengths(&["product-changed"]).await, before);

    // The genuine article still works.
    let ok = app
        .send(
            Method::POST,
            "/products",
            Some(&app.admin_token()),
            Some(json!({"name": "Real", "price_cents": 1})),
        )
        .await;
    assert_eq!(ok.status(), 201);
}
