//! The payment service's own test helpers on the shared [`TestApp`] (`common::testing`):
//! [`spawn_app`] runs the library's `run_with` in process with a known starting credit;
//! [`PaymentApp`] opens wallets through `user-registered`, waits for the `payment` group, reads
//! the wallet tables, and checks that money is conserved.

use std::time::Duration;

use common::{
    Envelope,
    events::{Event, OrderLine, OrderPlaced, UserRegistered},
    testing::wait_until,
};
use payment::{
    PaymentArgs,
    entity::{deposit, payment as payment_row, refund, wallet},
};
use sea_orm::EntityTrait;
use uuid::Uuid;

pub use common::testing::{TestApp, assert_problem};

/// Credit every wallet of the tests opens with.
pub const STARTING_CREDIT: i64 = 5_000;

/// Starts the payment service on `127.0.0.1:0` with its own Redis server, database and key
/// prefix, and wallets that open with [`STARTING_CREDIT`].
pub async fn spawn_app() -> TestApp {
    let settings = PaymentArgs {
        starting_credit_cents: STARTING_CREDIT,
    };
    TestApp::spawn(|args, listener, shutdown| {
        common::service::run_with::<payment::Payment>(args, settings, listener, shutdown)
    })
    .await
}

/// The payment service's domain helpers.
pub(crate) trait PaymentApp {
    /// Announces a new user and waits until the wallet is open; returns the user id.
    async fn register_user(&self) -> Uuid;
    async fn wallet(&self, user_id: Uuid) -> Option<wallet::Model>;
    async fn balance(&self, user_id: Uuid) -> i64;
    /// Waits until the `payment` group has handled everything on its streams and the outbox is
    /// empty.
    async fn settle(&self);
    /// Opening credit + deposits = balances + captured − refunded, over the whole database.
    async fn assert_money_conserved(&self);
}

impl PaymentApp for TestApp {
    async fn register_user(&self) -> Uuid {
        let user_id = Uuid::now_v7();
        let payload = UserRegistered {
            user_id,
            email: format!("{user_id}@example.com"),
        };
        let envelope =
            Envelope::new(UserRegistered::TYPE, "user", "req-user", "", &payload).unwrap();
        self.publish(&envelope).await;
        wait_until(Duration::from_secs(20), "wallet opened", || async move {
            self.wallet(user_id).await.is_some()
        })
        .await;
        user_id
    }

    async fn wallet(&self, user_id: Uuid) -> Option<wallet::Model> {
        wallet::Entity::find_by_id(user_id)
            .one(&self.db)
            .await
            .expect("query wallet")
    }

    async fn balance(&self, user_id: Uuid) -> i64 {
        self.wallet(user_id).await.expect("wallet").balance_cents
    }

    async fn settle(&self) {
        self.wait_idle(payment::worker::GROUP, &payment::worker::routes().streams())
            .await;
    }

    async fn assert_money_conserved(&self) {
        let wallets = wallet::Entity::find().all(&self.db).await.unwrap();
        let opening: i64 = wallets.iter().map(|w| w.opening_credit_cents).sum();
        let balances: i64 = wallets.iter().map(|w| w.balance_cents).sum();
        assert!(wallets.iter().all(|w| w.balance_cents >= 0));
        let deposits: i64 = deposit::Entity::find()
            .all(&self.db)
            .await
            .unwrap()
            .iter()
            .map(|d| d.amount_cents)
            .sum();
        let captured: i64 = payment_row::Entity::find()
            .all(&self.db)
            .await
            .unwrap()
            .iter()
            .filter(|p| p.status != payment_row::FAILED)
            .map(|p| p.amount_cents)
            .sum();
        let refunded: i64 = refund::Entity::find()
            .all(&self.db)
            .await
            .unwrap()
            .iter()
            .map(|r| r.amount_cents)
            .sum();
        assert_eq!(
            opening + deposits,
            balances + captured - refunded,
            "money conserved: opening {opening} + deposits {deposits} = balances {balances} \
             + captured {captured} - refunded {refunded}"
        );
    }
}

/// An `order-placed` event of `user_id` for `total_cents` (one line at that price, no fee).
pub fn placed(user_id: Uuid, total_cents: i64) -> (Envelope, OrderPlaced) {
    let order = OrderPlaced {
        order_id: Uuid::now_v7(),
        user_id,
        items: vec![OrderLine {
            product_id: Uuid::now_v7(),
            quantity: 1,
            unit_price_cents: total_cents,
        }],
        subtotal_cents: total_cents,
        fee_cents: 0,
        total_cents,
    };
    let envelope = Envelope::new(OrderPlaced::TYPE, "store", "req-42", "", &order).unwrap();
    (envelope, order)
}
