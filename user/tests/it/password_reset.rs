//! Password reset: 202 for everyone, a mailed link (read from the mail drop), a new request
//! invalidates older links, and confirming revokes every session.

use std::{path::Path, time::Duration};

use common::testing::wait_until;
use serde_json::{Value, json};

use crate::{PASSWORD, TestApp, UserApp, assert_problem, spawn_app};

fn mails(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir.join("maildrop")) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

fn token_of(mail: &str) -> String {
    let start = mail.find("#token=").expect("link in mail") + "#token=".len();
    mail[start..]
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap()
        .to_owned()
}

/// Asks for a reset and returns the token of the `n`-th mail.
async fn request_and_read(app: &TestApp, email: &str, n: usize) -> String {
    let response = app
        .post("/auth/password-reset", &json!({"email": email}))
        .await;
    assert_eq!(response.status(), 202);
    let dir = app.home.data.path().to_path_buf();
    wait_until(Duration::from_secs(15), "reset mail dropped", || {
        let dir = dir.clone();
        async move { mails(&dir).len() >= n }
    })
    .await;
    let mail = mails(&dir)[n - 1].clone();
    assert!(mail.contains(&format!("To: {email}")), "{mail}");
    token_of(&mail)
}

async fn confirm(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.post(
        "/auth/password-reset/confirm",
        &json!({"token": token, "new_password": password}),
    )
    .await
}

#[tokio::test]
async fn a_reset_sets_the_new_password_and_revokes_every_session() {
    let app = spawn_app().await;
    // Two devices, and on the first one a session that was refreshed (a rotated family).
    let laptop = app.session("quinn@example.com").await;
    let phone = app.session_with("quinn@example.com", PASSWORD).await;
    let rotated: Value = app
        .post("/auth/refresh", &json!({"refresh_token": laptop.refresh}))
        .await
        .json()
        .await
        .unwrap();
    let laptop_now = rotated["refresh_token"].as_str().unwrap().to_owned();
    // Someone else's session is none of this reset's business.
    let bystander = app.session("ruth@example.com").await;
    let token = request_and_read(&app, "quinn@example.com", 1).await;

    assert_eq!(
        confirm(&app, &token, "brand new password").await.status(),
        204
    );
    for refresh in [&laptop_now, &phone.refresh] {
        assert_problem(
            app.post("/auth/refresh", &json!({"refresh_token": refresh}))
                .await,
            401,
        )
        .await;
    }
    let live = app
        .refresh_tokens()
        .await
        .into_iter()
        .filter(|t| t.revoked_at.is_none())
        .count();
    assert_eq!(live, 1, "only the bystander's token is live");
    let refreshed = app
        .post(
            "/auth/refresh",
            &json!({"refresh_token": bystander.refresh}),
        )
        .await;
    assert_eq!(refreshed.status(), 200);
    assert_problem(app.login("quinn@example.com", PASSWORD).await, 401).await;
    // The access tokens issued before the reset are void at once; the bystander's are not.
    for access in [&laptop.access, &phone.access] {
        let body = assert_problem(app.get_as("/users/me", access).await, 401).await;
        assert_eq!(body["detail"], "token revoked");
    }
    assert_eq!(
        app.get_as("/users/me", &bystander.access).await.status(),
        200
    );
    // A log-in right after the reset (same second, even) works.
    let fresh = app
        .session_with("quinn@example.com", "brand new password")
        .await;
    assert_eq!(app.get_as("/users/me", &fresh.access).await.status(), 200);
    // A token works once.
    assert_problem(confirm(&app, &token, "yet another password").await, 400).await;
}

#[tokio::test]
async fn a_new_request_invalidates_earlier_links() {
    let app = spawn_app().await;
    app.register("rose@example.com", PASSWORD).await;
    let first = request_and_read(&app, "rose@example.com", 1).await;
    let second = request_and_read(&app, "rose@example.com", 2).await;
    assert_ne!(first, second);
    let body = assert_problem(confirm(&app, &first, "brand new password").await, 400).await;
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .ends_with("/invalid-reset-token")
    );
    app.session_with("rose@example.com", PASSWORD).await;
    assert_eq!(
        confirm(&app, &second, "brand new password").await.status(),
        204
    );
}

#[tokio::test]
async fn unknown_emails_get_202_and_no_mail() {
    let app = spawn_app().await;
    for email in ["nobody@example.com", "not an email"] {
        let response = app
            .post("/auth/password-reset", &json!({"email": email}))
            .await;
        assert_eq!(response.status(), 202);
    }
    // A known account's request goes through the same worker: once its mail is there, the
    // unknown ones would have been too.
    app.register("sam@example.com", PASSWORD).await;
    request_and_read(&app, "sam@example.com", 1).await;
    assert_eq!(mails(app.home.data.path()).len(), 1);
}

#[tokio::test]
async fn bad_confirmations_are_4xx_and_change_nothing() {
    let app = spawn_app().await;
    let session = app.session("tina@example.com").await;
    let token = request_and_read(&app, "tina@example.com", 1).await;

    assert_problem(
        confirm(&app, "made-up-token", "brand new password").await,
        400,
    )
    .await;
    assert_problem(confirm(&app, &token, "short").await, 422).await;
    assert_problem(
        app.post("/auth/password-reset/confirm", &json!({"token": token}))
            .await,
        422,
    )
    .await;
    assert_problem(app.post("/auth/password-reset", &json!({})).await, 422).await;

    // Nothing changed: the old password and the session still work, the token is still good.
    app.session_with("tina@example.com", PASSWORD).await;
    let refreshed: Value = app
        .post("/auth/refresh", &json!({"refresh_token": session.refresh}))
        .await
        .json()
        .await
        .unwrap();
    assert!(refreshed["access_token"].is_string());
    assert_eq!(
        confirm(&app, &token, "brand new password").await.status(),
        204
    );
}

#[tokio::test]
async fn the_mailed_link_opens_a_form_that_keeps_the_token_out_of_the_url() {
    let app = spawn_app().await;
    let response = app.get("/auth/password-reset/confirm").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["referrer-policy"], "no-referrer");
    let html = response.text().await.unwrap();
    assert!(html.contains("<form") && html.contains("location.hash"));
}

#[tokio::test]
async fn reset_mails_are_throttled_per_account() {
    let app = spawn_app().await;
    app.register("uri@example.com", PASSWORD).await;
    for n in 1..=3 {
        request_and_read(&app, "uri@example.com", n).await;
    }
    let response = app
        .post("/auth/password-reset", &json!({"email": "uri@example.com"}))
        .await;
    assert_eq!(response.status(), 202);
    // A fourth mail would have arrived by the time another account's first one does.
    app.register("vera@example.com", PASSWORD).await;
    request_and_read(&app, "vera@example.com", 4).await;
    let to_uri = mails(app.home.data.path())
        .iter()
        .filter(|m| m.contains("To: uri@example.com"))
        .count();
    assert_eq!(to_uri, 3);
}

/// Anyone with Redis access can publish: a copy of a real `password-reset-requested` with the
/// attacker's address must not get the victim's reset link mailed to the attacker. The forged
/// entry is dead-lettered; the victim's own mail still goes out.
#[tokio::test]
async fn a_forged_reset_event_never_mails_the_link_to_another_address() {
    use redis::AsyncCommands as _;
    let app = spawn_app().await;
    app.register("victim@example.com", PASSWORD).await;
    request_and_read(&app, "victim@example.com", 1).await;

    let mut redis = app.redis.clone();
    let stream = format!("{}password-reset-requested", app.keys.prefix());
    let entries: redis::streams::StreamRangeReply = redis.xrange_all(&stream).await.unwrap();
    let real = entries.ids.last().expect("the real request's event");
    let data: Value =
        serde_json::from_str(&real.get::<String>("data").expect("data field")).unwrap();
    let mut forged = data.clone();
    forged["email"] = json!("attacker@example.com");
    let envelope =
        common::Envelope::new("password-reset-requested", "user", "forger", "", &forged).unwrap();
    let _: String = redis
        .xadd(&stream, "*", &envelope.to_fields())
        .await
        .unwrap();

    let dead_letter = app.keys.dead_letter("password-reset-requested");
    wait_until(
        Duration::from_secs(15),
        "forged event dead-lettered",
        || {
            let (mut redis, dead_letter) = (redis.clone(), dead_letter.clone());
            async move {
                let n: u64 = redis.xlen(&dead_letter).await.unwrap();
                n == 1
            }
        },
    )
    .await;
    let dropped = mails(app.home.data.path());
    assert_eq!(dropped.len(), 1, "only the victim's own mail");
    assert!(
        dropped.iter().all(|m| !m.contains("attacker@example.com")),
        "a reset link went to the forger's address"
    );
}

/// Mailed reset links are secrets: the mail drop and its files are the service user's alone.
#[cfg(unix)]
#[tokio::test]
async fn the_mail_drop_is_readable_by_the_service_user_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let app = spawn_app().await;
    app.register("pat@example.com", PASSWORD).await;
    request_and_read(&app, "pat@example.com", 1).await;
    let dir = app.home.data.path().join("maildrop");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "maildrop folder");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
}
