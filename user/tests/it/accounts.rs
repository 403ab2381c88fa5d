//! Registration, log-in and `GET /users/me`.

use std::time::Duration;

use common::testing::wait_until;
use redis::AsyncCommands as _;
use serde_json::{Value, json};

use crate::{PASSWORD, UserApp, assert_problem, spawn_app};

#[tokio::test]
async fn registering_creates_a_user_and_publishes_user_registered() {
    let app = spawn_app().await;
    let response = app.register("  Ann@Example.com ", PASSWORD).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["email"], "ann@example.com");
    assert_eq!(body["role"], "user");
    assert!(body.get("password_hash").is_none());
    let id = body["id"].as_str().unwrap().to_owned();

    let stream = format!("{}user-registered", app.keys.prefix());
    let mut redis = app.redis.clone();
    wait_until(Duration::from_secs(10), "user-registered published", || {
        let mut redis = redis.clone();
        let stream = stream.clone();
        let id = id.clone();
        async move {
            let entries: redis::streams::StreamRangeReply =
                redis.xrange_all(&stream).await.unwrap();
            entries.ids.iter().any(|e| {
                e.get::<String>("data")
                    .is_some_and(|d| d.contains(&id) && d.contains("ann@example.com"))
            })
        }
    })
    .await;
    let entries: redis::streams::StreamRangeReply = redis.xrange_all(&stream).await.unwrap();
    let ours: Vec<_> = entries
        .ids
        .iter()
        .filter(|e| e.get::<String>("data").is_some_and(|d| d.contains(&id)))
        .collect();
    assert_eq!(ours.len(), 1, "published exactly once");
    assert_eq!(
        ours[0].get::<String>("type").as_deref(),
        Some("user-registered")
    );
    assert_eq!(ours[0].get::<String>("producer").as_deref(), Some("user"));
}

#[tokio::test]
async fn registering_as_admin_yields_a_user() {
    let app = spawn_app().await;
    let response = app
        .post(
            "/auth/register",
            &json!({"email": "mallory@example.com", "password": PASSWORD, "role": "admin"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["role"], "user");
    let session = app.session_with("mallory@example.com", PASSWORD).await;
    let me: Value = app
        .get_as("/users/me", &session.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "user");
    assert_problem(app.get_as("/users", &session.access).await, 403).await;
}

#[tokio::test]
async fn duplicate_email_is_409_and_changes_nothing() {
    let app = spawn_app().await;
    assert_eq!(
        app.register("bob@example.com", PASSWORD).await.status(),
        201
    );
    let before = app.user_count().await;
    let body = assert_problem(
        app.register("BOB@example.com", "another password").await,
        409,
    )
    .await;
    assert!(body["type"].as_str().unwrap().ends_with("/conflict"));
    assert_eq!(app.user_count().await, before);
    // The original password still works, the second one does not.
    app.session_with("bob@example.com", PASSWORD).await;
    assert_problem(app.login("bob@example.com", "another password").await, 401).await;
}

#[tokio::test]
async fn invalid_registrations_are_422_or_400_and_change_nothing() {
    let app = spawn_app().await;
    let before = app.user_count().await;
    for (email, password) in [
        ("not-an-email", PASSWORD),
        ("a@b", PASSWORD),
        ("carol@example.com", "short"),
        ("carol@example.com", &"x".repeat(129)),
    ] {
        let body = assert_problem(app.register(email, password).await, 422).await;
        assert!(
            body["type"].as_str().unwrap().ends_with("/validation"),
            "{body}"
        );
    }
    assert_problem(
        app.post("/auth/register", &json!({"email": "carol@example.com"}))
            .await,
        422,
    )
    .await;
    let garbage = app
        .http
        .post(app.url("/auth/register"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_problem(garbage, 400).await;
    assert_eq!(app.user_count().await, before);
}

#[tokio::test]
async fn login_returns_tokens_and_an_httponly_refresh_cookie() {
    let app = spawn_app().await;
    app.register("dave@example.com", PASSWORD).await;
    let response = app.login("DAVE@example.com", PASSWORD).await;
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().unwrap() > 0);
    let refresh = body["refresh_token"].as_str().unwrap();
    assert!(cookie.starts_with(&format!("refresh_token={refresh};")));
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/auth", "Secure"] {
        assert!(
            cookie.contains(attribute),
            "cookie without {attribute}: {cookie}"
        );
    }
    let me: Value = app
        .get_as("/users/me", body["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "dave@example.com");
    assert_eq!(me["role"], "user");
}

#[tokio::test]
async fn wrong_password_and_unknown_email_are_the_same_401() {
    let app = spawn_app().await;
    app.register("erin@example.com", PASSWORD).await;
    let wrong = assert_problem(app.login("erin@example.com", "wrong password").await, 401).await;
    let unknown = assert_problem(app.login("nobody@example.com", PASSWORD).await, 401).await;
    assert_eq!(wrong, unknown);
    assert_problem(
        app.post("/auth/login", &json!({"email": "erin@example.com"}))
            .await,
        422,
    )
    .await;
}

#[tokio::test]
async fn a_login_body_that_is_not_json_is_400_and_counts_no_failure() {
    let app = spawn_app().await;
    app.register("fay@example.com", PASSWORD).await;
    for body in [
        "{not json",
        r#"{"email": "fay@example.com", "password": "#,
        r#"{"email": "fay@example.com", "password": "correct horse battery""#,
    ] {
        let response = app
            .http
            .post(app.url("/auth/login"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 400).await;
        assert!(
            problem["type"].as_str().unwrap().ends_with("/bad-request"),
            "{problem}"
        );
    }
    // Nothing was counted or issued.
    assert!(app.redis_keys("auth:login-failures:*").await.is_empty());
    assert!(app.refresh_tokens().await.is_empty());
    app.session_with("fay@example.com", PASSWORD).await;
}

#[tokio::test]
async fn me_needs_a_token() {
    let app = spawn_app().await;
    let body = assert_problem(app.get("/users/me").await, 401).await;
    assert!(body["type"].as_str().unwrap().ends_with("/unauthorized"));
    let basic = app
        .http
        .get(app.url("/users/me"))
        .header("authorization", "Basic YWRtaW46YWRtaW4=")
        .send()
        .await
        .unwrap();
    assert_problem(basic, 401).await;
}
