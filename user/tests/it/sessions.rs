//! Refresh-token rotation and reuse detection, log-out, and the failed log-in limits.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::{Value, json};
use user::{UserArgs, entity::refresh_token, session::hash_secret};

use crate::{PASSWORD, TestApp, UserApp, assert_problem, spawn_app, spawn_app_with};

async fn refresh(app: &crate::TestApp, token: &str) -> reqwest::Response {
    app.post("/auth/refresh", &json!({"refresh_token": token}))
        .await
}

#[tokio::test]
async fn refresh_rotates_the_token() {
    let app = spawn_app().await;
    let session = app.session("frank@example.com").await;
    let response = refresh(&app, &session.refresh).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("HttpOnly")
    );
    let body: Value = response.json().await.unwrap();
    let rotated = body["refresh_token"].as_str().unwrap();
    assert_ne!(rotated, session.refresh);
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(app.get_as("/users/me", access).await.status(), 200);
    // The new one works in turn.
    assert_eq!(refresh(&app, rotated).await.status(), 200);
}

#[tokio::test]
async fn refresh_works_from_the_cookie_alone() {
    let app = spawn_app().await;
    let session = app.session("grace@example.com").await;
    let cookie = session.set_cookie.split(';').next().unwrap().to_owned();
    let response = app
        .http
        .post(app.url("/auth/refresh"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_the_family() {
    let app = spawn_app().await;
    let session = app.session("heidi@example.com").await;
    let first: Value = refresh(&app, &session.refresh).await.json().await.unwrap();
    let current = first["refresh_token"].as_str().unwrap().to_owned();

    // An attacker replays the stolen, already rotated token.
    let body = assert_problem(refresh(&app, &session.refresh).await, 401).await;
    assert!(
        body["detail"].as_str().unwrap().contains("already used"),
        "{body}"
    );
    // The legitimate holder's current token died with the family.
    assert_problem(refresh(&app, &current).await, 401).await;
    // Another log-in (another family) is unaffected.
    let other = app.session_with("heidi@example.com", PASSWORD).await;
    assert_eq!(refresh(&app, &other.refresh).await.status(), 200);
}

/// A rotated refresh token presented again means it was stolen: the family is revoked, and so
/// is every access token of the account (which came from that family is not known).
#[tokio::test]
async fn reusing_a_refresh_token_revokes_the_accounts_access_tokens() {
    let app = spawn_app().await;
    let session = app.session("vera@example.com").await;
    let rotated: Value = refresh(&app, &session.refresh).await.json().await.unwrap();
    let new_access = rotated["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get_as("/users/me", &new_access).await.status(), 200);

    assert_problem(refresh(&app, &session.refresh).await, 401).await;
    for access in [&session.access, &new_access] {
        let body = assert_problem(app.get_as("/users/me", access).await, 401).await;
        assert_eq!(body["detail"], "token revoked");
    }
    // The owner logs in again and goes on.
    let again = app.session_with("vera@example.com", PASSWORD).await;
    assert_eq!(app.get_as("/users/me", &again.access).await.status(), 200);
}

#[tokio::test]
async fn invalid_refresh_tokens_are_401() {
    let app = spawn_app().await;
    assert_problem(refresh(&app, "made-up").await, 401).await;
    assert_problem(app.post("/auth/refresh", &json!({})).await, 401).await;
    let garbage = app
        .http
        .post(app.url("/auth/refresh"))
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_problem(garbage, 400).await;
}

#[tokio::test]
async fn an_expired_refresh_token_is_401_and_changes_nothing() {
    let app = spawn_app().await;
    let session = app.session("ines@example.com").await;
    // Its lifetime is over (the row says so, as it would 30 days on).
    let db = app.db.clone();
    refresh_token::Entity::update_many()
        .col_expr(
            refresh_token::Column::ExpiresAt,
            Expr::value(chrono::Utc::now() - chrono::Duration::minutes(1)),
        )
        .filter(refresh_token::Column::TokenHash.eq(hash_secret(&session.refresh)))
        .exec(&db)
        .await
        .unwrap();
    let before = app.refresh_tokens().await;

    let body = assert_problem(refresh(&app, &session.refresh).await, 401).await;
    assert_eq!(body["detail"], "invalid or expired refresh token");
    // No new token, the old one neither used nor revoked: an expiry is not a reuse.
    assert_eq!(app.refresh_tokens().await, before);
    let cookie = session.set_cookie.split(';').next().unwrap().to_owned();
    let from_cookie = app
        .http
        .post(app.url("/auth/refresh"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_problem(from_cookie, 401).await;
    assert_eq!(app.refresh_tokens().await, before);
}

#[tokio::test]
async fn logout_revokes_the_access_token_everywhere_and_the_session() {
    let app = spawn_app().await;
    let session = app.session("ivan@example.com").await;
    let other = app.session_with("ivan@example.com", PASSWORD).await;
    let response = app
        .http
        .post(app.url("/auth/logout"))
        .bearer_auth(&session.access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let cleared = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");

    let body = assert_problem(app.get_as("/users/me", &session.access).await, 401).await;
    assert_eq!(body["detail"], "token revoked");
    assert_problem(refresh(&app, &session.refresh).await, 401).await;
    // Every other process learns it from `token-revoked`: this token, until just past its
    // expiry.
    let claims = app.signer.verifier().verify(&session.access).unwrap();
    let stream = format!("{}token-revoked", app.keys.prefix());
    let redis = app.redis.clone();
    common::testing::wait_until(
        std::time::Duration::from_secs(10),
        "token-revoked published",
        || {
            let (mut redis, stream) = (redis.clone(), stream.clone());
            async move {
                let n: u64 = redis::cmd("XLEN")
                    .arg(&stream)
                    .query_async(&mut redis)
                    .await
                    .unwrap();
                n == 1
            }
        },
    )
    .await;
    let mut redis = redis.clone();
    let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(&stream)
        .arg("-")
        .arg("+")
        .query_async(&mut redis)
        .await
        .unwrap();
    let data: Value = serde_json::from_str(&entries.ids[0].get::<String>("data").unwrap()).unwrap();
    assert_eq!(data["jti"], claims.jti.as_str());
    assert_eq!(data["reason"], "logout");
    let until = data["until"].as_i64().unwrap();
    assert!(until >= claims.exp && until <= claims.exp + 120, "{until}");
    // The other device's session lives on.
    assert_eq!(app.get_as("/users/me", &other.access).await.status(), 200);
    assert_eq!(refresh(&app, &other.refresh).await.status(), 200);
    // Logging out needs a token.
    assert_problem(app.post("/auth/logout", &json!({})).await, 401).await;
}

#[tokio::test]
async fn failed_logins_are_limited_per_account() {
    let app = spawn_app().await;
    app.register("judy@example.com", PASSWORD).await;
    for _ in 0..5 {
        assert_problem(app.login("judy@example.com", "wrong password").await, 401).await;
    }
    let response = app.login("judy@example.com", PASSWORD).await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    let body = assert_problem(response, 429).await;
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .ends_with("/too-many-requests")
    );
    // Other accounts are not locked out.
    app.session("ken@example.com").await;
}

#[tokio::test]
async fn failed_logins_are_limited_per_client() {
    let app = spawn_app_with(UserArgs {
        login_max_failures_per_ip: 3,
        ..UserArgs::default()
    })
    .await;
    app.register("leo@example.com", PASSWORD).await;
    for i in 0..3 {
        assert_problem(
            app.login(&format!("guess{i}@example.com"), "whatever1")
                .await,
            401,
        )
        .await;
    }
    let response = app.login("leo@example.com", PASSWORD).await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    let body = assert_problem(response, 429).await;
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .ends_with("/too-many-requests")
    );
    // Even the right password got no session.
    assert!(app.refresh_tokens().await.is_empty());
}

/// Fires `n` log-ins at once and counts the answers by status.
async fn concurrent_logins(app: &TestApp, logins: Vec<(String, String)>) -> (usize, usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for (email, password) in logins {
        let (http, url) = (app.http.clone(), app.url("/auth/login"));
        tasks.spawn(async move {
            http.post(url)
                .json(&json!({"email": email, "password": password}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    let (mut unauthorized, mut limited) = (0, 0);
    while let Some(status) = tasks.join_next().await {
        match status.unwrap() {
            401 => unauthorized += 1,
            429 => limited += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    (unauthorized, limited)
}

#[tokio::test]
async fn concurrent_wrong_passwords_cannot_exceed_the_account_limit() {
    let app = spawn_app_with(UserArgs {
        login_max_failures: 3,
        login_max_failures_per_ip: 1_000,
        ..UserArgs::default()
    })
    .await;
    app.register("olga@example.com", PASSWORD).await;
    let guesses = (0..24)
        .map(|i| ("olga@example.com".to_owned(), format!("guess number {i}")))
        .collect();
    // Every guess is counted before its password is checked: exactly the limit get checked.
    assert_eq!(concurrent_logins(&app, guesses).await, (3, 21));
    assert_problem(app.login("olga@example.com", PASSWORD).await, 429).await;
    assert!(app.refresh_tokens().await.is_empty());
}

#[tokio::test]
async fn concurrent_guesses_from_one_client_cannot_exceed_its_limit() {
    let app = spawn_app_with(UserArgs {
        login_max_failures_per_ip: 4,
        ..UserArgs::default()
    })
    .await;
    app.register("pia@example.com", PASSWORD).await;
    let guesses = (0..24)
        .map(|i| (format!("guess{i}@example.com"), PASSWORD.to_owned()))
        .collect();
    assert_eq!(concurrent_logins(&app, guesses).await, (4, 20));
    assert_problem(app.login("pia@example.com", PASSWORD).await, 429).await;
}

#[tokio::test]
async fn successful_log_ins_do_not_count_against_the_client() {
    let app = spawn_app_with(UserArgs {
        login_max_failures_per_ip: 2,
        ..UserArgs::default()
    })
    .await;
    app.register("quentin@example.com", PASSWORD).await;
    for _ in 0..5 {
        app.session_with("quentin@example.com", PASSWORD).await;
    }
    assert_problem(app.login("nobody@example.com", PASSWORD).await, 401).await;
    app.session_with("quentin@example.com", PASSWORD).await;
}

#[tokio::test]
async fn a_successful_login_resets_the_account_counter() {
    let app = spawn_app().await;
    app.register("mia@example.com", PASSWORD).await;
    for _ in 0..4 {
        assert_problem(app.login("mia@example.com", "wrong password").await, 401).await;
    }
    app.session_with("mia@example.com", PASSWORD).await;
    for _ in 0..4 {
        assert_problem(app.login("mia@example.com", "wrong password").await, 401).await;
    }
    app.session_with("mia@example.com", PASSWORD).await;
}
