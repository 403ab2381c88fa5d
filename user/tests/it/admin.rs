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
}

#[tokio::test]
async fn bad_pagination_is_4xx() {
    let app = spawn_app().await;
    let admin = app.admin_session().await;
    assert_problem(app.get_as("/users?page=0", &admin.access).await, 422).await;
    assert_problem(app.get_as("/users?per_page=101", &admin.access).await, 422).await;
    assert_problem(app.get_as("/users?per_page=0", &admin.access).await, 422).await;
    assert_problem(app.get_as("/users?page=abc", &admin.access).await, 400).await;
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
    assert_problem(
        patch(
            &app,
            &admin.access,
            &Uuid::new_v4().to_string(),
            &json!({"role": "admin"}),
        )
        .await,
        404,
    )
    .await;
    assert_problem(
        patch(&app, &admin.access, "not-a-uuid", &json!({"role": "admin"})).await,
        404,
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
    let root = app.admin_session().await;
    let root_id = user_id(&app, &root.access).await;
    let sam = app.session("sam@example.com").await;
    let sam_id = user_id(&app, &sam.access).await;
    let response = patch(&app, &root.access, &sam_id, &json!({"role": "admin"})).await;
    assert_eq!(response.status(), 200);
    // An admin token for sam (the role is in the token, so it stays an admin token for the
    // whole test, whatever the rounds do to the account).
    let sam = app.session_with("sam@example.com", PASSWORD).await;
    // Each round: two admins, each demoting the other at the same moment. On PostgreSQL a
    // count that does not lock lets both through now and then; exactly one may win.
    for round in 0..8 {
        if round > 0 {
            let response = patch(&app, &root.access, &sam_id, &json!({"role": "admin"})).await;
            assert_eq!(response.status(), 200, "round {round}: promote");
        }
        let demote = json!({"role": "user"});
        let (a, b) = tokio::join!(
            patch(&app, &root.access, &sam_id, &demote),
            patch(&app, &sam.access, &root_id, &demote),
        );
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "round {round}");
        let admins = admin_count(&app).await;
        assert_eq!(admins, 1, "round {round}: exactly one admin left");
        // Put root back in charge for the next round (sam may have won).
        let root_role = role_in_db(&app, &root_id).await;
        if root_role != "admin" {
            let response = patch(&app, &sam.access, &root_id, &json!({"role": "admin"})).await;
            assert_eq!(response.status(), 200);
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

/// Runs `user create-admin --email … --password …`, the real binary, against the app's database.
async fn create_admin(app: &TestApp, email: &str, password: &str) -> std::process::Output {
    let command = service_command(
        env!("CARGO_BIN_EXE_user"),
        &app.redis_server.url(),
        &app.home.test_db.url,
        app.home.data.path(),
        app.keys.prefix(),
    );
    tokio::process::Command::from(command)
        .args(["create-admin", "--email", email, "--password", password])
        .env_remove("MESH_ADMIN_EMAIL")
        .env_remove("MESH_ADMIN_PASSWORD")
        .output()
        .await
        .expect("run the user binary")
}

#[tokio::test]
async fn create_admin_creates_a_new_admin_account() {
    let app = spawn_app().await;
    let before = app.user_count().await;
    let output = create_admin(&app, "Night.Shift@Example.com", "night-shift-password").await;
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

#[tokio::test]
async fn create_admin_promotes_an_existing_account_and_keeps_its_password() {
    let app = spawn_app().await;
    app.register("pat@example.com", PASSWORD).await;
    let before = app.user_count().await;
    let output = create_admin(&app, "pat@example.com", "ignored-password").await;
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

#[tokio::test]
async fn create_admin_refuses_bad_input_and_creates_nothing() {
    let app = spawn_app().await;
    let before = app.user_count().await;
    for (email, password) in [
        ("not-an-email", "long-enough-password"),
        ("ok@example.com", "short"),
    ] {
        let output = create_admin(&app, email, password).await;
        assert!(!output.status.success(), "{email} / {password}");
    }
    assert_eq!(app.user_count().await, before);
}
