//! Admin endpoints: `GET /users` (paginated) and `PATCH /users/{id}` (role).

use serde_json::{Value, json};
use uuid::Uuid;

use crate::{ADMIN_EMAIL, TestApp, problem, spawn_app};

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
    let admin = app.admin().await;
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
    let admin = app.admin().await;
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
    let admin = app.admin().await;
    problem(app.get_as("/users?page=0", &admin.access).await, 422).await;
    problem(app.get_as("/users?per_page=101", &admin.access).await, 422).await;
    problem(app.get_as("/users?per_page=0", &admin.access).await, 422).await;
    problem(app.get_as("/users?page=abc", &admin.access).await, 400).await;
}

#[tokio::test]
async fn an_admin_promotes_a_user_who_then_gets_admin_tokens() {
    let app = spawn_app().await;
    let admin = app.admin().await;
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
    let admin = app.admin().await;
    let oscar = app.session("oscar@example.com").await;
    let id = user_id(&app, &oscar.access).await;

    problem(
        patch(&app, &admin.access, &id, &json!({"role": "root"})).await,
        422,
    )
    .await;
    problem(patch(&app, &admin.access, &id, &json!({})).await, 422).await;
    problem(
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
    problem(
        patch(&app, &admin.access, "not-a-uuid", &json!({"role": "admin"})).await,
        404,
    )
    .await;
    // A user cannot promote themselves; no token at all is 401.
    problem(
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
    problem(anonymous, 401).await;

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
    let admin = app.admin().await;
    let id = user_id(&app, &admin.access).await;
    problem(
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
async fn create_admin_promotes_an_existing_account() {
    let app = spawn_app().await;
    app.register("pat@example.com", crate::PASSWORD).await;
    let args = common::config::MeshArgs {
        database_url: Some(app.db.url.clone()),
        data_dir: app.data.path().to_path_buf(),
        ..Default::default()
    };
    user::create_admin(args, "pat@example.com", "ignored-password")
        .await
        .unwrap();
    let pat = app.session_with("pat@example.com", crate::PASSWORD).await;
    let me: Value = app
        .get_as("/users/me", &pat.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "admin");
}
