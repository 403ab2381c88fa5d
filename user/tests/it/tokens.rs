//! Forged, expired and revoked access tokens are 401 problem+json; the wrong role is 403.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use common::auth::{Claims, JwtSigner, Role};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{TestApp, UserApp, assert_problem, spawn_app};

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

async fn user_claims(app: &TestApp) -> (String, Claims) {
    let session = app.session("victim@example.com").await;
    let claims = app.signer.verifier().verify(&session.access).unwrap();
    (session.access, claims)
}

async fn rejected(app: &TestApp, token: &str) -> Value {
    let body = assert_problem(app.get_as("/users/me", token).await, 401).await;
    // Also on an admin route: never a 403 (which would mean the token was believed).
    assert_problem(app.get_as("/users", token).await, 401).await;
    body
}

#[tokio::test]
async fn alg_none_is_rejected() {
    let app = spawn_app().await;
    let (_, claims) = user_claims(&app).await;
    let forged = Claims {
        role: Role::Admin,
        ..claims
    };
    let token = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&serde_json::to_value(&forged).unwrap())
    );
    rejected(&app, &token).await;
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_rejected() {
    let app = spawn_app().await;
    let (_, claims) = user_claims(&app).await;
    let forged = Claims {
        role: Role::Admin,
        ..claims
    };
    let pem = std::fs::read(app.home.data.path().join("jwt-ed25519.pub.pem")).unwrap();
    let jwks: Value = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    let raw = URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["x"].as_str().unwrap())
        .unwrap();
    for secret in [pem, raw] {
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &forged,
            &EncodingKey::from_secret(&secret),
        )
        .unwrap();
        rejected(&app, &token).await;
    }
}

#[tokio::test]
async fn an_expired_token_is_rejected() {
    let app = spawn_app().await;
    let (_, claims) = user_claims(&app).await;
    let now = chrono::Utc::now().timestamp();
    let expired = Claims {
        iat: now - 7200,
        exp: now - 3600,
        ..claims
    };
    let token = app.signer.sign(&expired).unwrap();
    let body = rejected(&app, &token).await;
    assert_eq!(body["detail"], "token expired");
}

#[tokio::test]
async fn a_token_signed_with_another_key_is_rejected() {
    let app = spawn_app().await;
    let other = tempfile::tempdir().unwrap();
    let stranger = JwtSigner::load(&common::auth::AuthArgs::default(), other.path()).unwrap();
    let (token, _) = stranger.issue(Uuid::new_v4(), Role::Admin).unwrap();
    rejected(&app, &token).await;
}

#[tokio::test]
async fn a_tampered_payload_is_rejected() {
    let app = spawn_app().await;
    let (token, claims) = user_claims(&app).await;
    let parts: Vec<&str> = token.split('.').collect();
    let forged = Claims {
        role: Role::Admin,
        ..claims
    };
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(&serde_json::to_value(&forged).unwrap()),
        parts[2]
    );
    rejected(&app, &tampered).await;
}

#[tokio::test]
async fn a_token_denylisted_by_logout_is_rejected() {
    let app = spawn_app().await;
    let (token, _) = user_claims(&app).await;
    let response = app
        .http
        .post(app.url("/auth/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let body = rejected(&app, &token).await;
    assert_eq!(body["detail"], "token revoked");
}

#[tokio::test]
async fn a_valid_user_token_on_an_admin_route_is_403() {
    let app = spawn_app().await;
    let (token, _) = user_claims(&app).await;
    let body = assert_problem(app.get_as("/users", &token).await, 403).await;
    assert!(body["type"].as_str().unwrap().ends_with("/forbidden"));
}
