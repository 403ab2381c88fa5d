//! Admin stock adjustments: a signed delta with a reason, one conditional update (never below
//! zero: 409, nothing changed), a ledger row per change, and the ledger read back.

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{InventoryApp, assert_problem, spawn_app};

#[tokio::test]
async fn admin_adjusts_stock_and_the_ledger_sums_to_it() {
    let app = spawn_app().await;
    let admin = app.admin_token();
    let product = app.create_product("Tray", 700, 5).await;
    let id: Uuid = product["id"].as_str().unwrap().parse().unwrap();
    let path = format!("/products/{id}/stock");

    let added: Value = app
        .send(
            Method::POST,
            &path,
            Some(&admin),
            Some(json!({"delta": 10, "reason": "restock"})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(added["stock"], 15);
    let removed = app
        .send(
            Method::POST,
            &path,
            Some(&admin),
            Some(json!({"delta": -15, "reason": "damaged in storage"})),
        )
        .await;
    assert_eq!(removed.status(), 200);
    assert_eq!(removed.json::<Value>().await.unwrap()["stock"], 0);
    // Stock changes are not catalog changes: the revision stays.
    assert_eq!(app.product(id).await.unwrap().revision, 1);

    let ledger: Value = app
        .send(
            Method::GET,
            &format!("/products/{id}/movements"),
            Some(&admin),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ledger["stock"], 0);
    assert_eq!(ledger["total"], 3);
    let items = ledger["items"].as_array().unwrap();
    let seen: Vec<(i64, &str)> = items
        .iter()
        .map(|m| (m["delta"].as_i64().unwrap(), m["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [(-15, "damaged in storage"), (10, "restock"), (5, "initial")]
    );
    assert!(items.iter().all(|m| m["order_id"].is_null()));

    let page: Value = app
        .send(
            Method::GET,
            &format!("/products/{id}/movements?page=2&per_page=2"),
            Some(&admin),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["reason"], "initial");
    let sum: i64 = app.movements(id).await.iter().map(|m| m.delta).sum();
    assert_eq!(sum, app.product(id).await.unwrap().stock);
    // The ledger (the creation's movement and the adjustments) is a list like every other.
    app.assert_paged_list(&format!("/products/{id}/movements"), Some(&admin))
        .await;
}

#[tokio::test]
async fn removing_more_than_the_stock_is_a_conflict_and_changes_nothing() {
    let app = spawn_app().await;
    let admin = app.admin_token();
    let product = app.create_product("Ladle", 900, 4).await;
    let id: Uuid = product["id"].as_str().unwrap().parse().unwrap();
    let response = app
        .send(
            Method::POST,
            &format!("/products/{id}/stock"),
            Some(&admin),
            Some(json!({"delta": -5, "reason": "count"})),
        )
        .await;
    let problem = assert_problem(response, 409).await;
    assert!(problem["detail"].as_str().unwrap().contains("negative"));
    assert_eq!(app.product(id).await.unwrap().stock, 4);
    assert_eq!(app.movements(id).await.len(), 1);
}

#[tokio::test]
async fn invalid_adjustments_are_rejected_and_change_nothing() {
    let app = spawn_app().await;
    let admin = app.admin_token();
    let product = app.create_product("Whisk", 400, 4).await;
    let id: Uuid = product["id"].as_str().unwrap().parse().unwrap();
    let path = format!("/products/{id}/stock");
    for body in [
        json!({"delta": 0, "reason": "nothing"}),
        json!({"delta": 2, "reason": ""}),
        json!({"delta": 2, "reason": "   "}),
        json!({"delta": 2}),
        json!({"reason": "restock"}),
        json!({"delta": 2_000_000_000_i64, "reason": "typo"}),
        json!({"delta": 1.5, "reason": "half"}),
        json!({"delta": 2, "reason": "restock", "stock": 100}),
    ] {
        let response = app
            .send(Method::POST, &path, Some(&admin), Some(body))
            .await;
        assert_problem(response, 422).await;
    }
    for (query, status) in [("page=0", 422), ("per_page=500", 422), ("page=two", 400)] {
        let response = app
            .send(
                Method::GET,
                &format!("/products/{id}/movements?{query}"),
                Some(&admin),
                None,
            )
            .await;
        assert_problem(response, status).await;
    }
    assert_eq!(app.product(id).await.unwrap().stock, 4);
    assert_eq!(app.movements(id).await.len(), 1);
}
