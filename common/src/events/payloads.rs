//! The typed payload of every event of the catalog (`super` names their types and streams,
//! `super::check` their bounds).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One line of an order, priced when it was placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub product_id: Uuid,
    pub quantity: i64,
    pub unit_price_cents: i64,
}

/// A new account (published by user; payment opens the wallet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRegistered {
    pub user_id: Uuid,
    pub email: String,
}

/// A password reset was asked for (published and consumed by user, which mails the link).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordResetRequested {
    pub user_id: Uuid,
    pub email: String,
    /// Id of the reset token row; the secret itself never travels on a stream.
    pub reset_id: Uuid,
}

/// A product was created, changed or deactivated (inventory → store's catalog projection).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductChanged {
    pub product_id: Uuid,
    pub name: String,
    pub price_cents: i64,
    pub active: bool,
    /// Monotonic per product, so a projection can ignore stale updates.
    pub revision: i64,
}

/// An order was placed and waits for payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub items: Vec<OrderLine>,
    pub subtotal_cents: i64,
    pub fee_cents: i64,
    pub total_cents: i64,
}

/// The order is placed and paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCompleted {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub payment_id: Uuid,
    pub items: Vec<OrderLine>,
    pub total_cents: i64,
}

/// Payment was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFailed {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub reason: String,
}

/// Every line of the order is reserved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockReserved {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub items: Vec<OrderLine>,
}

/// Why an order is being refunded.
///
/// A customer's cancellation is a *request* until the warehouse, the only service that knows
/// whether the goods have left, rules on it: the store publishes `cancelled_by_customer`; payment
/// tombstones an order it has not charged yet (nothing downstream exists then) and otherwise
/// waits; inventory waits. The warehouse cancels or tombstones the shipment and, if the goods
/// had not left, publishes `cancelled_before_shipping`, on which payment refunds and inventory
/// releases. A cancellation that comes after shipping changes nothing: the order ships. Without
/// this arbitration, a cancellation racing auto-dispatch gave the customer the goods *and* the
/// money back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundReason {
    /// inventory could not reserve every line.
    InsufficientStock,
    /// The warehouse could not fulfil the order (an admin failed the shipment).
    FulfillmentFailed,
    /// The customer asked to cancel (published by the store; a request, see above).
    CancelledByCustomer,
    /// The warehouse accepted a customer's cancellation: nothing had shipped.
    CancelledBeforeShipping,
}

impl RefundReason {
    /// The wire name, `insufficient_stock` etc.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InsufficientStock => "insufficient_stock",
            Self::FulfillmentFailed => "fulfillment_failed",
            Self::CancelledByCustomer => "cancelled_by_customer",
            Self::CancelledBeforeShipping => "cancelled_before_shipping",
        }
    }
}

/// Compensation: give the money back and release what was reserved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundOrder {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub reason: RefundReason,
}

/// The shipment left the warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderShipped {
    pub order_id: Uuid,
    pub shipment_id: Uuid,
    pub carrier: String,
    pub tracking_number: String,
}

/// The captured payment of an order was refunded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRefunded {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub payment_id: Uuid,
    pub amount_cents: i64,
}

/// Why access tokens were revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationReason {
    /// The token's holder logged out (one token).
    Logout,
    /// A rotated refresh token was presented again: the session was stolen or replayed.
    RefreshReuse,
    /// The password was reset.
    PasswordReset,
    /// An admin changed the account's role.
    RoleChanged,
}

/// Access tokens that every service must refuse from now on (published by user, followed by
/// every process of every service without a consumer group; see `common::auth::revocations`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRevoked {
    pub user_id: Uuid,
    /// `Some`: just this token (log-out). `None`: every token of the user issued before
    /// `issued_before_ms`.
    pub jti: Option<String>,
    /// Unix milliseconds; tokens of the user issued earlier are void (when `jti` is `None`).
    pub issued_before_ms: i64,
    /// Unix seconds after which every token this voids has expired anyway: then it can be
    /// forgotten.
    pub until: i64,
    pub reason: RevocationReason,
}
