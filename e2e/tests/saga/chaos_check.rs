//! The end of a chaos run, checked from the services' own records (their databases, read
//! through their entities): every `Idempotency-Key` yields exactly one order, every order is
//! terminal or shipped, no order is charged, reserved or shipped twice, and money and stock are
//! conserved across store, payment, inventory and warehouse.

use std::collections::{HashMap, HashSet};

use inventory::entity::{product, reservation, stock_movement};
use payment::entity::{payment as payment_row, refund, wallet};
use sea_orm::{DatabaseConnection, EntityTrait};
use store::entity::{order, order_line};
use uuid::Uuid;
use warehouse::entity::shipment;

use crate::chaos::Placed;
use crate::mesh::Mesh;

const TERMINAL_OR_SHIPPED: [&str; 4] = ["shipped", "payment_failed", "refunded", "cancelled"];

/// What the run set up.
pub struct Expected {
    pub starting_credit_cents: i64,
    /// Product ids and their initial stock.
    pub products: Vec<(String, i64)>,
}

async fn all<E: EntityTrait>(db: &DatabaseConnection) -> Vec<E::Model> {
    E::find().all(db).await.expect("read the service's records")
}

/// Asserts every invariant; returns a one-line summary for the report.
pub async fn check_records(mesh: &Mesh, placed: &[Placed], expected: &Expected) -> String {
    let connect = |name: &'static str| common::db::connect(mesh.db_url(name));
    let (store_db, payment_db, inventory_db, warehouse_db) = (
        connect("store").await.unwrap(),
        connect("payment").await.unwrap(),
        connect("inventory").await.unwrap(),
        connect("warehouse").await.unwrap(),
    );

    // Every key yields exactly one order, the one its POSTs answered.
    let orders = all::<order::Entity>(&store_db).await;
    assert_eq!(orders.len(), placed.len(), "one order per key and no other");
    let by_id: HashMap<Uuid, &order::Model> = orders.iter().map(|o| (o.id, o)).collect();
    for p in placed {
        let id: Uuid = p.order_id.parse().expect("an order id");
        let order = by_id
            .get(&id)
            .unwrap_or_else(|| panic!("order {id} missing"));
        assert_eq!(order.idempotency_key.as_deref(), Some(p.key.as_str()));
    }
    let mut statuses: HashMap<&str, usize> = HashMap::new();
    for order in &orders {
        assert!(
            TERMINAL_OR_SHIPPED.contains(&order.status.as_str()),
            "order {} stuck in {}",
            order.id,
            order.status
        );
        *statuses.entry(order.status.as_str()).or_default() += 1;
    }

    // One payment, one refund, one shipment per order at most; money where the status says.
    let payments = all::<payment_row::Entity>(&payment_db).await;
    let refunds = all::<refund::Entity>(&payment_db).await;
    let shipments = all::<shipment::Entity>(&warehouse_db).await;
    let payment_of = unique_by(&payments, |p| p.order_id, "payment");
    let refund_of = unique_by(&refunds, |r| r.order_id, "refund");
    let shipment_of = unique_by(&shipments, |s| s.order_id, "shipment");
    let mut captured_total = 0;
    for order in &orders {
        let payment = payment_of.get(&order.id);
        let captured = payment.filter(|p| p.status == payment_row::CAPTURED);
        let shipped = shipment_of
            .get(&order.id)
            .is_some_and(|s| s.status == shipment::SHIPPED);
        if order.status == "shipped" {
            assert!(shipped, "shipped order {} left the warehouse", order.id);
            let amount = captured.map(|p| p.amount_cents);
            assert_eq!(
                amount,
                Some(order.total_cents),
                "order {} paid once",
                order.id
            );
            captured_total += order.total_cents;
        } else {
            assert!(
                !shipped,
                "a {} order never ships: {}",
                order.status, order.id
            );
            assert!(
                captured.is_none(),
                "a {} order keeps no money",
                order.status
            );
        }
        if order.status == "refunded" {
            let refund = refund_of.get(&order.id).expect("a refund row");
            assert_eq!(Some(refund.amount_cents), payment.map(|p| p.amount_cents));
        }
    }
    let wallets = all::<wallet::Entity>(&payment_db).await;
    let mut debited = 0;
    for wallet in &wallets {
        let kept: i64 = payments
            .iter()
            .filter(|p| p.user_id == wallet.user_id && p.status == payment_row::CAPTURED)
            .map(|p| p.amount_cents)
            .sum();
        assert_eq!(
            wallet.balance_cents,
            wallet.opening_credit_cents - kept,
            "wallet {} conserved",
            wallet.user_id
        );
        assert_eq!(wallet.opening_credit_cents, expected.starting_credit_cents);
        debited += wallet.opening_credit_cents - wallet.balance_cents;
    }
    assert_eq!(
        debited, captured_total,
        "wallet debits = shipped orders' totals"
    );

    // Stock: initial = stock + units of shipped orders; the ledger sums to the stock; what is
    // held reserved is exactly what shipped.
    let lines = all::<order_line::Entity>(&store_db).await;
    let mut sold: HashMap<Uuid, i64> = HashMap::new();
    for line in &lines {
        if by_id[&line.order_id].status == "shipped" {
            *sold.entry(line.product_id).or_default() += line.quantity;
        }
    }
    let products = all::<product::Entity>(&inventory_db).await;
    let movements = all::<stock_movement::Entity>(&inventory_db).await;
    for (id, initial) in &expected.products {
        let id: Uuid = id.parse().unwrap();
        let stock = products.iter().find(|p| p.id == id).expect("product").stock;
        let out = sold.get(&id).copied().unwrap_or(0);
        assert_eq!(stock, initial - out, "stock of {id} conserved");
        let ledger: i64 = movements
            .iter()
            .filter(|m| m.product_id == id)
            .map(|m| m.delta)
            .sum();
        assert_eq!(ledger, stock, "the ledger of {id} sums to its stock");
    }
    let held: HashSet<Uuid> = all::<reservation::Entity>(&inventory_db)
        .await
        .into_iter()
        .filter(|r| r.status == reservation::RESERVED)
        .map(|r| r.order_id)
        .collect();
    let shipped: HashSet<Uuid> = orders
        .iter()
        .filter(|o| o.status == "shipped")
        .map(|o| o.id)
        .collect();
    assert_eq!(
        held, shipped,
        "stock is held for exactly the shipped orders"
    );

    for db in [store_db, payment_db, inventory_db, warehouse_db] {
        let _ = db.close().await;
    }
    let mut statuses: Vec<_> = statuses.into_iter().collect();
    statuses.sort();
    format!(
        "{} orders {statuses:?}; captured {captured_total} cents = wallet debits; {} refunds; stock and ledgers conserved",
        orders.len(),
        refunds.len()
    )
}

/// Rows by order id, asserting there is at most one per order.
fn unique_by<'a, T>(
    rows: &'a [T],
    order_id: impl Fn(&T) -> Uuid,
    what: &str,
) -> HashMap<Uuid, &'a T> {
    let mut by_order = HashMap::new();
    for row in rows {
        let id = order_id(row);
        assert!(
            by_order.insert(id, row).is_none(),
            "two {what}s for order {id}"
        );
    }
    by_order
}
