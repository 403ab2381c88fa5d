//! The HTTP API: your own wallet, bounded deposits recorded in the ledger, payments by order
//! for the owner or an admin, token checks, and every 4xx a problem+json that changes nothing.

use common::{
    auth::Role,
    events::{Event as _, OrderCompleted},
};
use payment::entity::deposit;
use reqwest::Method;
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{PaymentApp, STARTING_CREDIT, TestApp, assert_problem, placed, spawn_app};

async fn place_order(app: &TestApp, user_id: Uuid, total_cents: i64) -> Uuid {
    let (envelope, order) = placed(user_id, total_cents);
    let before = app.events::<OrderCompleted>().await.len() as u64;
    app.publish(&envelope).await;
    app.wait_for_events(OrderCompleted::TYPE, before + 1).await;
    order.order_id
}

/// The items of a 200 page.
async fn items(response: reqwest::Response) -> Vec<Value> {
    assert_eq!(response.status(), 200, "{}", response.url());
    let page: Value = response.json().await.expect("JSON page");
    page["items"].as_array().expect("items").clone()
}

#[tokio::test]
async fn the_wallet_is_404_until_opened_then_shows_the_balance() {
    let app = spawn_app().await;
    let stranger = app.token_for(Uuid::now_v7(), Role::User);
    assert_problem(
        app.send(Method::GET, "/wallet", Some(&stranger), None)
            .await,
        404,
    )
    .await;

    let user_id = app.register_user().await;
    let token = app.token_for(user_id, Role::User);
    let response = app.send(Method::GET, "/wallet", Some(&token), None).await;
    assert_eq!(response.status(), 200);
    let wallet: Value = response.json().await.unwrap();
    assert_eq!(wallet["user_id"], user_id.to_string());
    assert_eq!(wallet["balance_cents"], STARTING_CREDIT);
}

#[tokio::test]
async fn deposits_are_bounded_recorded_and_credited() {
    let app = spawn_app().await;
    let user_id = app.register_user().await;
    let token = app.token_for(user_id, Role::User);

    let response = app
        .send(
            Method::POST,
            "/wallet/deposit",
            Some(&token),
            Some(json!({"amount_cents": 1_000_000})),
        )
        .await;
    assert_eq!(response.status(), 201);
    let receipt: Value = response.json().await.unwrap();
    assert_eq!(receipt["deposit"]["amount_cents"], 1_000_000);
    assert_eq!(
        receipt["wallet"]["balance_cents"],
        STARTING_CREDIT + 1_000_000
    );
    let response = app
        .send(
            Method::POST,
            "/wallet/deposit",
            Some(&token),
            Some(json!({"amount_cents": 1})),
        )
        .await;
    assert_eq!(response.status(), 201);

    for (body, status) in [
        (json!({"amount_cents": 0}), 422),
        (json!({"amount_cents": -5}), 422),
        (json!({"amount_cents": 1_000_001}), 422),
        (json!({"amount_cents": i64::MAX}), 422),
        (json!({"amount_cents": "10"}), 422),
        (json!({"amount_cents": 1.5}), 422),
        (json!({}), 422),
        (json!({"amount_cents": 10, "to": "someone"}), 422),
    ] {
        let response = app
            .send(
                Method::POST,
                "/wallet/deposit",
                Some(&token),
                Some(body.clone()),
            )
            .await;
        assert_problem(response, status).await;
    }
    // Not JSON at all.
    let response = app
        .http
        .post(app.url("/wallet/deposit"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_problem(response, 400).await;

    // A wallet not open yet takes no deposit.
    let stranger = app.token_for(Uuid::now_v7(), Role::User);
    let response = app
        .send(
            Method::POST,
            "/wallet/deposit",
            Some(&stranger),
            Some(json!({"amount_cents": 10})),
        )
        .await;
    assert_problem(response, 404).await;

    assert_eq!(app.balance(user_id).await, STARTING_CREDIT + 1_000_001);
    assert_eq!(deposit::Entity::find().count(&app.db).await.unwrap(), 2);
    app.assert_money_conserved().await;
}

#[tokio::test]
async fn payments_are_visible_to_their_owner_and_admins_only() {
    let app = spawn_app().await;
    let owner = app.register_user().await;
    let other = app.register_user().await;
    let order_id = place_order(&app, owner, 300).await;
    let other_order = place_order(&app, other, 400).await;
    app.settle().await;

    let owner_token = app.token_for(owner, Role::User);
    let path = format!("/payments?order_id={order_id}");
    let mine = items(app.send(Method::GET, &path, Some(&owner_token), None).await).await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["order_id"], order_id.to_string());
    assert_eq!(mine[0]["status"], "captured");
    assert_eq!(mine[0]["amount_cents"], 300);

    // Someone else's order: an empty list, indistinguishable from an unknown order.
    let other_token = app.token_for(other, Role::User);
    let response = app.send(Method::GET, &path, Some(&other_token), None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(items(response).await.len(), 0);
    // Without a filter, each sees their own.
    let all_mine = items(
        app.send(Method::GET, "/payments", Some(&other_token), None)
            .await,
    )
    .await;
    assert_eq!(all_mine.len(), 1);
    assert_eq!(all_mine[0]["order_id"], other_order.to_string());
    // A user may not list someone else's payments by user id.
    let response = app
        .send(
            Method::GET,
            &format!("/payments?user_id={owner}"),
            Some(&other_token),
            None,
        )
        .await;
    assert_problem(response, 403).await;

    let admin = app.token_for(Uuid::now_v7(), Role::Admin);
    let seen = items(app.send(Method::GET, &path, Some(&admin), None).await).await;
    assert_eq!(seen.len(), 1);
    let everything = items(app.send(Method::GET, "/payments", Some(&admin), None).await).await;
    assert_eq!(everything.len(), 2);
    let by_user = items(
        app.send(
            Method::GET,
            &format!("/payments?user_id={other}"),
            Some(&admin),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(by_user.len(), 1);

    // An id that is not a UUID does not parse: 400.
    let response = app
        .send(Method::GET, "/payments?order_id=nope", Some(&admin), None)
        .await;
    assert_problem(response, 400).await;
    // The rules of every list.
    app.assert_paged_list("/payments", Some(&admin)).await;
    app.assert_money_conserved().await;
}

#[tokio::test]
async fn every_route_needs_a_valid_token() {
    let app = spawn_app().await;
    let user_id = app.register_user().await;
    // A valid token with one character of its signature changed (not the last one, whose low
    // bits are base64 padding).
    let token = app.token_for(user_id, Role::User);
    let at = token.len() - 10;
    let swapped = if &token[at..=at] == "A" { "B" } else { "A" };
    let forged = format!("{}{swapped}{}", &token[..at], &token[at + 1..]);
    for (method, path) in [
        (Method::GET, "/wallet"),
        (Method::POST, "/wallet/deposit"),
        (Method::GET, "/wallet/deposits"),
        (Method::GET, "/payments"),
    ] {
        let body = (method == Method::POST).then(|| json!({"amount_cents": 10}));
        assert_problem(
            app.send(method.clone(), path, None, body.clone()).await,
            401,
        )
        .await;
        assert_problem(
            app.send(method.clone(), path, Some("not-a-jwt"), body.clone())
                .await,
            401,
        )
        .await;
        let response = app.send(method.clone(), path, Some(&forged), body).await;
        assert_problem(response, 401).await;
    }
    assert_eq!(app.balance(user_id).await, STARTING_CREDIT);
    assert_eq!(deposit::Entity::find().count(&app.db).await.unwrap(), 0);
}

#[tokio::test]
async fn concurrent_deposits_are_all_credited_and_listed() {
    let app = spawn_app().await;
    let user_id = app.register_user().await;
    let token = app.token_for(user_id, Role::User);
    let requests = (1..=20).map(|i| {
        app.send(
            Method::POST,
            "/wallet/deposit",
            Some(&token),
            Some(json!({"amount_cents": i * 10})),
        )
    });
    for response in futures::future::join_all(requests).await {
        assert_eq!(response.status(), 201);
    }
    let expected: i64 = (1..=20).map(|i| i * 10).sum();
    assert_eq!(app.balance(user_id).await, STARTING_CREDIT + expected);

    let listed = items(
        app.send(Method::GET, "/wallet/deposits", Some(&token), None)
            .await,
    )
    .await;
    assert_eq!(listed.len(), 20);
    app.assert_paged_list("/wallet/deposits", Some(&token))
        .await;
    let total: i64 = listed
        .iter()
        .map(|d| d["amount_cents"].as_i64().unwrap())
        .sum();
    assert_eq!(total, expected);
    // Someone else's ledger is not visible; a wallet not open yet is 404.
    let stranger = app.token_for(Uuid::now_v7(), Role::User);
    let response = app
        .send(Method::GET, "/wallet/deposits", Some(&stranger), None)
        .await;
    assert_problem(response, 404).await;
    app.assert_money_conserved().await;
}

#[tokio::test]
async fn a_logged_out_token_is_refused() {
    let app = spawn_app().await;
    let user_id = app.register_user().await;
    let (token, claims) = app.signer.issue(user_id, Role::User).expect("token");
    let response = app.send(Method::GET, "/wallet", Some(&token), None).await;
    assert_eq!(response.status(), 200);

    // What the user service's logout publishes: the token's `jti` on `token-revoked`, which
    // every process follows.
    let revoked = common::events::TokenRevoked {
        user_id,
        jti: Some(claims.jti.clone()),
        issued_before_ms: 0,
        until: claims.exp,
        reason: common::events::RevocationReason::Logout,
    };
    let envelope = common::Envelope::new("token-revoked", "user", "r", "", &revoked).unwrap();
    let _: String = redis::cmd("XADD")
        .arg(app.keys.stream("token-revoked"))
        .arg("*")
        .arg(envelope.to_fields())
        .query_async(&mut app.redis.clone())
        .await
        .expect("publish the revocation");
    common::testing::wait_until(
        std::time::Duration::from_secs(10),
        "revocation applied",
        || async {
            app.send(Method::GET, "/wallet", Some(&token), None)
                .await
                .status()
                == 401
        },
    )
    .await;
    assert_problem(
        app.send(Method::GET, "/wallet", Some(&token), None).await,
        401,
    )
    .await;
    let deposit = Some(json!({"amount_cents": 10}));
    let response = app
        .send(Method::POST, "/wallet/deposit", Some(&token), deposit)
        .await;
    assert_problem(response, 401).await;
    assert_eq!(app.balance(user_id).await, STARTING_CREDIT);
}
