//! The event catalog: every stream of the mesh and the typed payload of its events
//! (docs/architecture.md, "Streams"). Each event type has its own stream, named like the type.

mod check;
mod payloads;
pub mod wiring;

use serde::{Serialize, de::DeserializeOwned};

pub use check::Check;
pub use payloads::*;

/// A payload with a fixed event type and stream, and bounds ([`Check`], see
/// [`crate::limits`]) that a consumer checks on decoding.
pub trait Event: Serialize + DeserializeOwned + Check + Send + Sync {
    /// The envelope `type` and the (unprefixed) stream name.
    const TYPE: &'static str;
}

/// Every event stream of the mesh, unprefixed.
pub const ALL_STREAMS: [&str; 11] = [
    UserRegistered::TYPE,
    PasswordResetRequested::TYPE,
    ProductChanged::TYPE,
    OrderPlaced::TYPE,
    OrderCompleted::TYPE,
    PaymentFailed::TYPE,
    StockReserved::TYPE,
    RefundOrder::TYPE,
    OrderShipped::TYPE,
    PaymentRefunded::TYPE,
    TokenRevoked::TYPE,
];

macro_rules! event_type {
    ($($ty:ty => $name:literal),* $(,)?) => {
        $(impl Event for $ty { const TYPE: &'static str = $name; })*
    };
}

event_type! {
    UserRegistered => "user-registered",
    PasswordResetRequested => "password-reset-requested",
    ProductChanged => "product-changed",
    OrderPlaced => "order-placed",
    OrderCompleted => "order-completed",
    PaymentFailed => "payment-failed",
    StockReserved => "stock-reserved",
    RefundOrder => "refund-order",
    OrderShipped => "order-shipped",
    PaymentRefunded => "payment-refunded",
    TokenRevoked => "token-revoked",
}
