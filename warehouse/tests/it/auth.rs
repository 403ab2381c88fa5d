//! Every `/shipments` route is admin only: no token or a bad one is a 401 problem, a user's token
//! a 403 problem, and neither changes a shipment or publishes anything.

use common::{
    auth::{AuthArgs, JwtSigner, Role},
    events::{Event as _, OrderShipped, RefundOrder},
};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::support::{WarehouseApp, assert_problem, reserved_order, spawn_manual_app};

#[tokio::test]
async fn shipments_are_for_admins_only() {
    let app = spawn_manual_app().await;
    let (envelope, order) = reserved_order();
    app.deliver(&envelope).await;
    let shipment = app.shipment_of(order.order_id).await.unwrap();
    let id = shipment.id;

    let elsewhere = tempfile::tempdir().unwrap();
    let stranger = JwtSigner::load(&AuthArgs::default(), elsewhere.path()).unwrap();
    let foreign_admin = stranger.issue(Uuid::now_v7(), Role::Admin).unwrap().0;
    let user = app.token(Role::User);

    let routes = [
        (Method::GET, "/shipments".to_owned(), None),
        (Method::GET, format!("/shipments/{id}"), None),
        (Method::POST, format!("/shipments/{id}/ship"), None),
        (
            Method::POST,
            format!("/shipments/{id}/fail"),
            Some(json!({"reason": "lost"})),
        ),
    ];
    for (method, path, body) in &routes {
        for (who, token, status) in [
            ("nobody", None, 401),
            ("garbage", Some("not.a.token"), 401),
            ("an admin of another key", Some(foreign_admin.as_str()), 401),
            ("a user", Some(user.as_str()), 403),
        ] {
            let response = app.send(method.clone(), path, token, body.clone()).await;
            assert_eq!(response.status(), status, "{method} {path} as {who}");
            assert_problem(response, status).await;
        }
    }
    assert_eq!(app.shipment_of(order.order_id).await.unwrap(), shipment);
    let counts = app.published().await;
    assert_eq!(
        (counts[OrderShipped::TYPE], counts[RefundOrder::TYPE]),
        (0, 0)
    );

    // And an admin may.
    let admin = app.admin_token();
    let listed = app
        .send(Method::GET, "/shipments", Some(&admin), None)
        .await;
    assert_eq!(listed.status(), 200);
}
