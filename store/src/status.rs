//! The order status machine (docs/architecture.md, "Order status"): `pending < paid < reserved < shipped` only move
//! forward; `payment_failed`, `refunded` and `cancelled` are terminal (with one exception, a
//! cancellation that came too late: see [`OrderStatus::allowed_from`]). Events of one order arrive
//! on different streams in any order, so a transition is allowed from every status it may
//! overtake — `shipped` may land on a `pending` order whose `order-completed` is still queued —
//! and the late events that follow are ignored. Whatever the arrival order, the final state is
//! the same.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Placed, waiting for payment.
    Pending,
    /// Paid (`order-completed`).
    Paid,
    /// Paid and every line reserved (`stock-reserved`).
    Reserved,
    /// On its way (`order-shipped`).
    Shipped,
    /// Terminal: the payment was refused (`payment-failed`).
    PaymentFailed,
    /// Terminal: the money went back (`payment-refunded`).
    Refunded,
    /// Terminal: cancelled by the customer before it was paid.
    Cancelled,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 7] = [
        Self::Pending,
        Self::Paid,
        Self::Reserved,
        Self::Shipped,
        Self::PaymentFailed,
        Self::Refunded,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Paid => "paid",
            Self::Reserved => "reserved",
            Self::Shipped => "shipped",
            Self::PaymentFailed => "payment_failed",
            Self::Refunded => "refunded",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::PaymentFailed | Self::Refunded | Self::Cancelled)
    }

    /// Position on the forward path; terminal states rank above all of it.
    pub fn rank(self) -> u8 {
        match self {
            Self::Pending => 0,
            Self::Paid => 1,
            Self::Reserved => 2,
            Self::Shipped => 3,
            Self::PaymentFailed | Self::Refunded | Self::Cancelled => 4,
        }
    }

    /// The statuses an order may be in for it to move to `self`.
    ///
    /// - forward states: from any lower forward state;
    /// - `payment_failed` and `cancelled`: only from `pending` (a paid order is not unpaid by a
    ///   contradictory event, and a paid order's cancellation goes through a refund);
    /// - `refunded`: from any non-terminal state — the money went back, whatever else the order
    ///   reached before the news did;
    /// - `shipped` also from `cancelled`: the one exception to "terminal states stay". A
    ///   `pending` order is cancelled here at once, but if payment had already charged it (the
    ///   store's view lags the saga by a few events) the warehouse rules on the cancellation, and
    ///   when the goods had already left it refuses: the order shipped and stays paid, and its
    ///   status must say so.
    pub fn allowed_from(self) -> &'static [OrderStatus] {
        use OrderStatus::*;
        match self {
            Pending => &[],
            Paid => &[Pending],
            Reserved => &[Pending, Paid],
            Shipped => &[Pending, Paid, Reserved, Cancelled],
            PaymentFailed | Cancelled => &[Pending],
            Refunded => &[Pending, Paid, Reserved, Shipped],
        }
    }

    /// Whether an order in `self` may move to `to`.
    pub fn can_move_to(self, to: OrderStatus) -> bool {
        to.allowed_from().contains(&self)
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::OrderStatus::{self, *};

    #[test]
    fn never_moves_backwards_and_terminal_states_stay() {
        for from in OrderStatus::ALL {
            for to in OrderStatus::ALL {
                if from.can_move_to(to) && (from, to) != (Cancelled, Shipped) {
                    assert!(!from.is_terminal(), "{from} is terminal but moves to {to}");
                    assert!(to.rank() > from.rank(), "{from} → {to} goes backwards");
                }
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for st in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(st.as_str()), Some(st));
            assert_eq!(
                serde_json::to_value(st).unwrap(),
                serde_json::Value::String(st.as_str().into())
            );
        }
        assert_eq!(OrderStatus::parse("lost"), None);
        assert!(Paid.can_move_to(Shipped) && !Shipped.can_move_to(Paid));
        // A cancellation the warehouse refused because the goods had left.
        assert!(Cancelled.can_move_to(Shipped));
        assert!(!Cancelled.can_move_to(Paid) && !Cancelled.can_move_to(Refunded));
        assert!(!Refunded.can_move_to(Shipped) && !PaymentFailed.can_move_to(Shipped));
    }
}
