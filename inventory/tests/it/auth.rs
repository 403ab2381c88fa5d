//! Token attacks on the inventory's admin endpoints: each forged, stale, mis-scoped or revoked
//! token is a 401 problem and creates nothing. The tokens are verified locally with the public
//! key; revocations arrive on the `token-revoked` stream.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use std::time::Duration;

use common::{
    Envelope,
    auth::{AuthArgs, Claims, JwtSigner, Role},
    events::{Event as _, RevocationReason, TokenRevoked},
};
use redis::AsyncCommands as _;
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::support::{InventoryApp, TestApp, assert_problem, spawn_app};

fn claims(app: &TestApp, role: Role, exp_in_secs: i64) -> Claims {
    let mut claims = app.signer.claims(Uuid::now_v7(), role);
    claims.exp = claims.iat + exp_in_secs;
    claims
}

fn b64(value: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// Every attack, by name.
async fn forged_tokens(app: &TestApp) -> Vec<(&'static str, String)> {
    let admin_claims = serde_json::to_value(claims(app, Role::Admin, 600)).unwrap();

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

    let expired = app.signer.sign(&claims(app, Role::Admin, -3600)).unwrap();

    // Signed with the right key, but for another mesh, by another issuer, or "issued" ahead of
    // time to outlive a revocation.
    let mut other_audience = claims(app, Role::Admin, 600);
    other_audience.aud = "another-mesh".into();
    let other_audience = app.signer.sign(&other_audience).unwrap();
    let mut other_issuer = claims(app, Role::Admin, 600);
    other_issuer.iss = "someone-else".into();
    let other_issuer = app.signer.sign(&other_issuer).unwrap();
    let mut future = claims(app, Role::Admin, 7200);
    future.iat += 3600;
    let future = app.signer.sign(&future).unwrap();

    let elsewhere = tempfile::tempdir().unwrap();
    let stranger = JwtSigner::load(&AuthArgs::default(), elsewhere.path()).unwrap();
    let wrong_key = stranger.issue(Uuid::now_v7(), Role::Admin).unwrap().0;

    // A genuine user token whose payload is rewritten to say admin; the signature no longer fits.
    let (user_token, user_claims) = app.signer.issue(Uuid::now_v7(), Role::User).unwrap();
    let mut promoted = serde_json::to_value(&user_claims).unwrap();
    promoted["role"] = json!("admin");
    let parts: Vec<&str> = user_token.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], b64(&promoted), parts[2]);

    // A genuine admin token after logout: the user service's `token-revoked`, as its relay
    // would publish it. Every process follows the stream; wait until this one has read it.
    let (revoked, revoked_claims) = app.signer.issue(Uuid::now_v7(), Role::Admin).unwrap();
    let revocation = TokenRevoked {
        user_id: revoked_claims.sub,
        jti: Some(revoked_claims.jti.clone()),
        issued_before_ms: 0,
        until: revoked_claims.exp,
        reason: RevocationReason::Logout,
    };
    let envelope = Envelope::new(TokenRevoked::TYPE, "user", "logout", "", &revocation).unwrap();
    let _: String = app
        .redis
        .clone()
        .xadd(app.stream(TokenRevoked::TYPE), "*", &envelope.to_fields())
        .await
        .unwrap();
    common::testing::wait_until(Duration::from_secs(10), "revocation applied", || async {
        // A write (to an unknown product: nothing changes) tells whether the token is refused.
        let write = app
            .send(
                Method::POST,
                &format!("/products/{}/stock", Uuid::now_v7()),
                Some(&revoked),
                Some(json!({"delta": 1, "reason": "probe"})),
            )
            .await;
        write.status() == 401
    })
    .await;

    vec![
        ("alg none", alg_none),
        ("HS256 with the public key", hs256),
        ("expired", expired),
        ("wrong key", wrong_key),
        ("tampered payload", tampered),
        ("another audience", other_audience),
        ("another issuer", other_issuer),
        ("issued in the future", future),
        ("revoked", revoked),
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
