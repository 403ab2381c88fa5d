//! The bounds of the domain every service agrees on: what an API accepts and what an event may
//! carry. A consumer checks an event against the same numbers a producer's API checked its
//! request with (`crate::events` `Event::check`), so a forged or odd entry is dead-lettered
//! instead of reaching a sum, and every sum of in-bound values fits in an `i64`.

/// Most lines in an order.
pub const MAX_ORDER_LINES: usize = 50;
/// Most units of one product on one line.
pub const MAX_LINE_QUANTITY: i64 = 1_000;
/// Highest price of a product, in cents (100 million).
pub const MAX_PRICE_CENTS: i64 = 10_000_000_000;
/// Highest order total in cents: every line at the highest price and quantity, doubled for any
/// fee. About 1e15, far below `i64::MAX` (9.2e18).
pub const MAX_ORDER_TOTAL_CENTS: i64 =
    2 * MAX_PRICE_CENTS * MAX_LINE_QUANTITY * MAX_ORDER_LINES as i64;
/// Longest free-text field of an event (names, reasons, carriers, tracking numbers), in
/// characters.
pub const MAX_TEXT_CHARS: usize = 200;
/// Longest e-mail address (RFC 5321).
pub const MAX_EMAIL_LEN: usize = 254;
