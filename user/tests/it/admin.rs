//! Admin endpoints: `GET /users` (paginated) and `PATCH /users/{id}` (role), the last-admin
//! guard under concurrent demotions, and the `create-admin` subcommand of the real binary.

use std::time::Duration;

use common::testing::{service_command, wait_until};
use redis::AsyncCommands as _;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{ADMIN_EMAIL, PASSWORD, TestApp, UserApp, assert_problem, spawn_app};

async fn patch(app: &TestApp, token: &str, id: &str, body: &Value) -> reqwest::Response {
    app.http
        .patch(app.url(&format!("/users/{id}")))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn user_id(app: &TestApp, token: &str) -> String {
    let me: Value = app.get_as("/users/me", token).await.json().await.unwrap();
    me["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_startup_admin_exists_and_is_admin() {
    let app = spawn_app().await;
    let admin = app.admin_session().await;
    let me: Value = app
        .get_as("/users/me", &admin.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], ADMIN_EMAIL);
    assert_eq!(me["role"], "admin");
}

#[tokio::test]
async fn admins_list_users_page_by_page() {
    let app = spawn_app().await;
    for i in 0..5 {
        assert_eq!(
            app.register(&format!("u{i}@example.com"), crate::PASSWORD)
                .await
                .status(),
            201
        );
    }
    let admin = app.admin_session().await;
    let page: Value = app
        .get_as("/users?page=2&per_page=2", &admin.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 6);
    assert_eq!(page["page"], 2);
    assert_eq!(page["per_page"], 2);
    let emails: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["u1@example.com", "u2@example.com"]);
    let last: Value = app
        .get_as("/users?page=4&per_page=2", &admin.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(last["items"].as_array().unwrap().len(), 0);
    let default: Value = app
        .get_as("/users", &admin.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(default["items"].as_array().unwrap().len(), 6);
    assert_eq!(default["per_page"], 20);
    // The rules of every list: unparsable pages 400, out of range 422, never a 5xx.
    app.assert_paged_list("/users", Some(&admin.access)).await;
}

#[tokio::test]
async fn an_admin_promotes_a_user_who_then_gets_admin_tokens() {
    let app = spawn_app().await;
    let admin = app.admin_session().await;
    let nina = app.session("nina@example.com").await;
    let id = user_id(&app, &nina.access).await;
    let response = patch(&app, &admin.access, &id, &json!({"role": "admin"})).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["role"], "admin");
    // The role is in the token: a refreshed session carries it.
    let refreshed: Value = app
        .post("/auth/refresh", &json!({"refresh_token": nina.refresh}))
        .await
        .json()
        .await
        .unwrap();
    let token = refreshed["access_token"].as_str().unwrap();
    assert_eq!(app.get_as("/users", token).await.status(), 200);
}

#[tokio::test]
async fn role_changes_reject_bad_input_and_change_nothing() {
    let app = spawn_app().await;
    let admin = app.admin_session().await;
    let oscar = app.session("oscar@example.com").await;
    let id = user_id(&app, &oscar.access).await;

    assert_problem(
        patch(&app, &admin.access, &id, &json!({"role": "root"})).await,
        422,
    )
    .await;
    assert_problem(patch(&app, &admin.access, &id, &json!({})).await, 422).await;
    // An id that is not a UUID is a 400, an unknown one a 404.
    app.assert_id_route(
        reqwest::Method::PATCH,
        "/users/{id}",
        Some(&admin.access),
        Some(json!({"role": "admin"})),
    )
    .await;
    // A user cannot promote themselves; no token at all is 401.
    assert_problem(
        patch(&app, &oscar.access, &id, &json!({"role": "admin"})).await,
        403,
    )
    .await;
    let anonymous = app
        .http
        .patch(app.url(&format!("/users/{id}")))
        .json(&json!({"role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_problem(anonymous, 401).await;

    let me: Value = app
        .get_as("/users/me", &oscar.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "user");
}

/// A demotion takes effect at once: the demoted admin's tokens stop working (they carry the old
/// role), and a new log-in gets a user token.
#[tokio::test]
async fn a_demoted_admins_tokens_stop_working_at_once() {
    let app = spawn_app().await;
    let root = app.admin_session().await;
    let sam = app.session("sam@example.com").await;
    let sam_id = user_id(&app, &sam.access).await;
    let response = patch(&app, &root.access, &sam_id, &json!({"role": "admin"})).await;
    assert_eq!(response.status(), 200);
    let sam_admin = app.session_with("sam@example.com", PASSWORD).await;
    assert_eq!(app.get_as("/users", &sam_admin.access).await.status(), 200);

    let response = patch(&app, &root.access, &sam_id, &json!({"role": "user"})).await;
    assert_eq!(response.status(), 200);
    let body = assert_problem(app.get_as("/users", &sam_admin.access).await, 401).await;
    assert_eq!(body["detail"], "token revoked");
    let sam_user = app.session_with("sam@example.com", PASSWORD).await;
    assert_problem(app.get_as("/users", &sam_user.access).await, 403).await;
    // The admin who made the change is not affected.
    assert_eq!(app.get_as("/users", &root.access).await.status(), 200);
}

#[tokio::test]
async fn the_last_admin_cannot_be_demoted() {
    let app = spawn_app().await;
    let admin = app.admin_session().await;
    let id = user_id(&app, &admin.access).await;
    assert_problem(
        patch(&app, &admin.access, &id, &json!({"role": "user"})).await,
        409,
    )
    .await;
    let me: Value = app
        .get_as("/users/me", &admin.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "admin");
}

#[tokio::test]
async fn a_role_change_that_is_not_json_is_400_and_changes_nothing() {
    let app = spawn_app().await;
    let admin = app.admin_session().await;
    let rita = app.session("rita@example.com").await;
    let id = user_id(&app, &rita.access).await;
    for body in ["{not json", r#"{"role": "admin""#] {
        let response = app
            .http
            .patch(app.url(&format!("/users/{id}")))
            .bearer_auth(&admin.access)
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
    let me: Value = app
        .get_as("/users/me", &rita.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "user");
}

#[tokio::test]
async fn concurrent_demotions_never_leave_the_mesh_without_an_admin() {
    let app = spawn_app().await;
    let root_id = user_id(&app, &app.admin_session().await.access).await;
    let sam = app.session("sam@example.com").await;
    let sam_id = user_id(&app, &sam.access).await;
    // Each round: two admins, each demoting the other at the same moment. On PostgreSQL a
    // count that does not lock lets both through now and then; exactly one may win. The loser
    // gets 409 (the last admin) or, when the winner's revocation of its tokens came first, 401.
    for round in 0..8 {
        // Both admins again (a role change voids the account's tokens: log in afresh).
        let root = app.admin_session().await;
        let response = patch(&app, &root.access, &sam_id, &json!({"role": "admin"})).await;
        assert_eq!(response.status(), 200, "round {round}: promote");
        let root = app.admin_session().await;
        let sam = app.session_with("sam@example.com", PASSWORD).await;
        let demote = json!({"role": "user"});
        let (a, b) = tokio::join!(
            patch(&app, &root.access, &sam_id, &demote),
            patch(&app, &sam.access, &root_id, &demote),
        );
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort_unstable();
        assert!(
            statuses == [200, 409] || statuses == [200, 401],
            "round {round}: {statuses:?}"
        );
        let admins = admin_count(&app).await;
        assert_eq!(admins, 1, "round {round}: exactly one admin left");
        // Put root back in charge for the next round (sam may have won).
        if role_in_db(&app, &root_id).await != "admin" {
            let sam = app.session_with("sam@example.com", PASSWORD).await;
            let response = patch(&app, &sam.access, &root_id, &json!({"role": "admin"})).await;
            assert_eq!(response.status(), 200);
            let root = app.admin_session().await;
            let response = patch(&app, &root.access, &sam_id, &json!({"role": "user"})).await;
            assert_eq!(response.status(), 200);
        }
    }
}

async fn admin_count(app: &TestApp) -> u64 {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    user::entity::user::Entity::find()
        .filter(user::entity::user::Column::Role.eq("admin"))
        .count(&app.db)
        .await
        .unwrap()
}

async fn role_in_db(app: &TestApp, id: &str) -> String {
    use sea_orm::EntityTrait;
    user::entity::user::Entity::find_by_id(id.parse::<Uuid>().unwrap())
        .one(&app.db)
        .await
        .unwrap()
        .unwrap()
        .role
}

/// Runs `user create-admin --email … --password … [extra]`, the real binary, against the app's
/// database.
async fn create_admin(
    app: &TestApp,
    email: &str,
    password: &str,
    extra: &[&str],
) -> std::process::Output {
    let command = service_command(
        env!("CARGO_BIN_EXE_user"),
        &app.redis_server.url(),
        &app.home.test_db.url,
        app.home.data.path(),
        app.keys.prefix(),
    );
    tokio::process::Command::from(command)
        .args(["create-admin", "--email", email, "--password", password])
        .args(extra)
        .env_remove("MESH_ADMIN_EMAIL")
        .env_remove("MESH_ADMIN_PASSWORD")
        .env_remove("MESH_ADMIN_PROMOTE_EXISTING")
        .output()
        .await
        .expect("run the user binary")
}

#[tokio::test]
async fn create_admin_creates_a_new_admin_account() {
    let app = spawn_app().await;
    let before = app.user_count().await;
    let output = create_admin(&app, "Night.Shift@Example.com", "night-shift-password", &[]).await;
    assert!(
        output.status.success(),
        "create-admin failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(app.user_count().await, before + 1);

    let session = app
        .session_with("night.shift@example.com", "night-shift-password")
        .await;
    let me: Value = app
        .get_as("/users/me", &session.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "admin");
    assert_eq!(app.get_as("/users", &session.access).await.status(), 200);

    // Its `user-registered` waited in the outbox; the running service's relay sends it.
    let id = me["id"].as_str().unwrap().to_owned();
    let stream = format!("{}user-registered", app.keys.prefix());
    let redis = app.redis.clone();
    wait_until(
        Duration::from_secs(15),
        "user-registered of the admin",
        || {
            let (mut redis, stream, id) = (redis.clone(), stream.clone(), id.clone());
            async move {
                let entries: redis::streams::StreamRangeReply =
                    redis.xrange_all(&stream).await.unwrap();
                entries
                    .ids
                    .iter()
                    .any(|e| e.get::<String>("data").is_some_and(|d| d.contains(&id)))
            }
        },
    )
    .await;
}

/// Anyone can register the admin's e-mail before the operator bootstraps it: `create-admin` must
/// not hand that account the admin role (nor set the password the squatter does not know).
#[tokio::test]
async fn create_admin_refuses_an_account_it_did_not_create() {
    let app = spawn_app().await;
    app.register("pat@example.com", PASSWORD).await;
    let pat_id = user_id(
        &app,
        &app.session_with("pat@example.com", PASSWORD).await.access,
    )
    .await;
    let before = app.user_count().await;

    let output = create_admin(&app, "pat@example.com", "operator-password", &[]).await;
    assert!(!output.status.success(), "create-admin promoted a squatter");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--promote-existing") && !stderr.contains("operator-password"),
        "the error says what to do and leaks no password: {stderr}"
    );
    assert_eq!(app.user_count().await, before);
    assert_eq!(role_in_db(&app, &pat_id).await, "user");
    assert_problem(app.login("pat@example.com", "operator-password").await, 401).await;
}

#[tokio::test]
async fn create_admin_promotes_an_existing_account_only_with_promote_existing() {
    let app = spawn_app().await;
    app.register("pat@example.com", PASSWORD).await;
    let before = app.user_count().await;
    let output = create_admin(
        &app,
        "pat@example.com",
        "ignored-password",
        &["--promote-existing"],
    )
    .await;
    assert!(
        output.status.success(),
        "create-admin failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(app.user_count().await, before);
    let pat = app.session_with("pat@example.com", PASSWORD).await;
    let me: Value = app
        .get_as("/users/me", &pat.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "admin");
    assert_problem(app.login("pat@example.com", "ignored-password").await, 401).await;
}

/// Running the bootstrap again for an admin it made (every start of `scripts/up.sh` does) is a
/// no-op that succeeds.
#[tokio::test]
async fn create_admin_for_an_existing_admin_succeeds_and_changes_nothing() {
    let app = spawn_app().await;
    let before = app.user_count().await;
    let output = create_admin(&app, ADMIN_EMAIL, "another-password-1", &[]).await;
    assert!(
        output.status.success(),
        "create-admin failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(app.user_count().await, before);
    app.admin_session().await;
    assert_problem(app.login(ADMIN_EMAIL, "another-password-1").await, 401).await;
}

/// The start-up bootstrap (`MESH_ADMIN_EMAIL`) follows the same rule: the service refuses to
/// start rather than promote an account registered by someone else, and promotes it only with
/// `MESH_ADMIN_PROMOTE_EXISTING`.
#[tokio::test]
async fn startup_bootstrap_refuses_an_existing_account_unless_told_to_promote() {
    let app = spawn_app().await;
    app.register("pat@example.com", PASSWORD).await;
    let pat_id = user_id(
        &app,
        &app.session_with("pat@example.com", PASSWORD).await.access,
    )
    .await;
    let args = common::config::MeshArgs {
        redis_url: app.redis_server.url(),
        database_url: Some(app.home.test_db.url.clone()),
        data_dir: app.home.data.path().to_path_buf(),
        stream_prefix: app.keys.prefix().to_owned(),
        ..common::config::MeshArgs::default()
    };
    let bootstrap = |promote: bool| user::UserArgs {
        admin_email: Some("pat@example.com".into()),
        admin_password: Some("operator-password".into()),
        admin_promote_existing: promote,
        ..user::UserArgs::default()
    };

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let refused = tokio::time::timeout(
        Duration::from_secs(20),
        common::service::run_with::<user::User>(
            args.clone(),
            bootstrap(false),
            listener,
            shutdown.clone(),
        ),
    )
    .await
    .expect("the refusal is immediate");
    let error = format!(
        "{:#}",
        refused.expect_err("started with a squatted admin e-mail")
    );
    assert!(error.contains("--promote-existing"), "{error}");
    assert_eq!(role_in_db(&app, &pat_id).await, "user");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let second = tokio::spawn(common::service::run_with::<user::User>(
        args,
        bootstrap(true),
        listener,
        shutdown.clone(),
    ));
    wait_until(Duration::from_secs(20), "pat promoted", || async {
        role_in_db(&app, &pat_id).await == "admin"
    })
    .await;
    shutdown.cancel();
    second.await.unwrap().unwrap();
    assert_problem(app.login("pat@example.com", "operator-password").await, 401).await;
}

#[tokio::test]
async fn create_admin_refuses_bad_input_and_creates_nothing() {
    let app = spawn_app().await;
    let before = app.user_count().await;
    for (email, password) in [
        ("not-an-email", "long-enough-password"),
        ("ok@example.com", "short"),
    ] {
        let output = create_admin(&app, email, password, &[]).await;
        assert!(!output.status.success(), "{email} / {password}");
    }
    assert_eq!(app.user_count().await, before);
}
