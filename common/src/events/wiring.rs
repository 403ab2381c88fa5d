//! Who writes and who reads each stream: the mesh's wiring in one table (the "Streams" table
//! of docs/architecture.md). The Redis ACL users are made from it (`crate::acl`), so a service
//! can touch only what it is listed for here; each service's tests check that its worker reads
//! exactly the streams listed for it.

use super::{
    Event as _, OrderCompleted, OrderPlaced, OrderShipped, PasswordResetRequested, PaymentFailed,
    PaymentRefunded, ProductChanged, RefundOrder, StockReserved, TokenRevoked, UserRegistered,
};

/// The services of the mesh (each one's consumer group is named like it).
pub const SERVICES: [&str; 5] = ["user", "inventory", "store", "payment", "warehouse"];

/// One stream's producers (through their outbox) and consumer groups.
#[derive(Debug, Clone, Copy)]
pub struct Wire {
    pub stream: &'static str,
    pub producers: &'static [&'static str],
    /// Services that read it in a consumer group of their own.
    pub groups: &'static [&'static str],
    /// Every process of every service reads it whole, without a group (`token-revoked`).
    pub read_by_all: bool,
}

const fn wire(
    stream: &'static str,
    producers: &'static [&'static str],
    groups: &'static [&'static str],
) -> Wire {
    Wire {
        stream,
        producers,
        groups,
        read_by_all: false,
    }
}

/// Every stream of [`super::ALL_STREAMS`], wired.
pub const WIRING: [Wire; 11] = [
    wire(UserRegistered::TYPE, &["user"], &["payment"]),
    wire(PasswordResetRequested::TYPE, &["user"], &["user"]),
    wire(ProductChanged::TYPE, &["inventory"], &["store"]),
    wire(OrderPlaced::TYPE, &["store"], &["payment"]),
    wire(OrderCompleted::TYPE, &["payment"], &["inventory", "store"]),
    wire(PaymentFailed::TYPE, &["payment"], &["store"]),
    wire(StockReserved::TYPE, &["inventory"], &["store", "warehouse"]),
    wire(
        RefundOrder::TYPE,
        &["inventory", "store", "warehouse"],
        &["inventory", "payment", "store", "warehouse"],
    ),
    wire(OrderShipped::TYPE, &["warehouse"], &["store"]),
    wire(PaymentRefunded::TYPE, &["payment"], &["store"]),
    Wire {
        stream: TokenRevoked::TYPE,
        producers: &["user"],
        groups: &[],
        read_by_all: true,
    },
];

/// The streams `service` reads in its consumer group, in [`WIRING`] order.
pub fn consumed_by(service: &str) -> Vec<&'static str> {
    WIRING
        .iter()
        .filter(|w| w.groups.contains(&service))
        .map(|w| w.stream)
        .collect()
}

/// The streams `service` publishes to, in [`WIRING`] order.
pub fn produced_by(service: &str) -> Vec<&'static str> {
    WIRING
        .iter()
        .filter(|w| w.producers.contains(&service))
        .map(|w| w.stream)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stream_is_wired_once_to_known_services() {
        let wired: Vec<_> = WIRING.iter().map(|w| w.stream).collect();
        assert_eq!(wired, super::super::ALL_STREAMS);
        for w in WIRING {
            for s in w.producers.iter().chain(w.groups) {
                assert!(SERVICES.contains(s), "{s} in {}", w.stream);
            }
            assert!(!w.producers.is_empty(), "{}", w.stream);
        }
    }
}
