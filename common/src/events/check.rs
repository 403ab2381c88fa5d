//! Bounds checks of event payloads ([`crate::limits`]): every consumer decodes through
//! [`Envelope::event`](crate::Envelope::event), which runs them, so an entry with a negative
//! quantity, a total that is not the sum of its lines or a price past the bound is poison
//! (dead-lettered) and never reaches a sum or a row.

use super::payloads::{
    OrderCompleted, OrderLine, OrderPlaced, OrderShipped, PasswordResetRequested, PaymentFailed,
    PaymentRefunded, ProductChanged, RefundOrder, StockReserved, TokenRevoked, UserRegistered,
};
use crate::limits::{
    MAX_EMAIL_LEN, MAX_LINE_QUANTITY, MAX_ORDER_LINES, MAX_ORDER_TOTAL_CENTS, MAX_PRICE_CENTS,
    MAX_TEXT_CHARS,
};

/// A payload's own bounds; `Err` says which one it breaks.
pub trait Check {
    fn check(&self) -> Result<(), String>;
}

fn within(name: &str, value: i64, min: i64, max: i64) -> Result<(), String> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(format!("`{name}` {value} is outside {min}..={max}"))
    }
}

fn text(name: &str, value: &str, max_chars: usize) -> Result<(), String> {
    if value.chars().count() <= max_chars {
        Ok(())
    } else {
        Err(format!("`{name}` is longer than {max_chars} characters"))
    }
}

/// The lines' bounds; returns their subtotal (which cannot overflow once they are in bounds,
/// but is summed with checked arithmetic all the same).
fn lines(items: &[OrderLine]) -> Result<i64, String> {
    if items.is_empty() || items.len() > MAX_ORDER_LINES {
        return Err(format!("`items` must have 1 to {MAX_ORDER_LINES} lines"));
    }
    items.iter().try_fold(0i64, |subtotal, line| {
        within("quantity", line.quantity, 1, MAX_LINE_QUANTITY)?;
        within(
            "unit_price_cents",
            line.unit_price_cents,
            0,
            MAX_PRICE_CENTS,
        )?;
        line.quantity
            .checked_mul(line.unit_price_cents)
            .and_then(|amount| subtotal.checked_add(amount))
            .ok_or_else(|| "the lines' subtotal overflows".to_owned())
    })
}

impl Check for OrderPlaced {
    fn check(&self) -> Result<(), String> {
        let subtotal = lines(&self.items)?;
        within("fee_cents", self.fee_cents, 0, MAX_ORDER_TOTAL_CENTS)?;
        within("total_cents", self.total_cents, 0, MAX_ORDER_TOTAL_CENTS)?;
        if subtotal != self.subtotal_cents
            || subtotal.checked_add(self.fee_cents) != Some(self.total_cents)
        {
            return Err(
                "`subtotal_cents` and `total_cents` do not add up from the lines and the fee"
                    .into(),
            );
        }
        Ok(())
    }
}

impl Check for OrderCompleted {
    fn check(&self) -> Result<(), String> {
        lines(&self.items)?;
        within("total_cents", self.total_cents, 0, MAX_ORDER_TOTAL_CENTS)
    }
}

impl Check for StockReserved {
    fn check(&self) -> Result<(), String> {
        lines(&self.items).map(drop)
    }
}

impl Check for PaymentRefunded {
    fn check(&self) -> Result<(), String> {
        within("amount_cents", self.amount_cents, 0, MAX_ORDER_TOTAL_CENTS)
    }
}

impl Check for ProductChanged {
    fn check(&self) -> Result<(), String> {
        within("price_cents", self.price_cents, 0, MAX_PRICE_CENTS)?;
        within("revision", self.revision, 0, i64::MAX)?;
        text("name", &self.name, MAX_TEXT_CHARS)
    }
}

impl Check for UserRegistered {
    fn check(&self) -> Result<(), String> {
        text("email", &self.email, MAX_EMAIL_LEN)
    }
}

impl Check for PasswordResetRequested {
    fn check(&self) -> Result<(), String> {
        text("email", &self.email, MAX_EMAIL_LEN)
    }
}

impl Check for PaymentFailed {
    fn check(&self) -> Result<(), String> {
        text("reason", &self.reason, MAX_TEXT_CHARS)
    }
}

impl Check for OrderShipped {
    fn check(&self) -> Result<(), String> {
        text("carrier", &self.carrier, MAX_TEXT_CHARS)?;
        text("tracking_number", &self.tracking_number, MAX_TEXT_CHARS)
    }
}

impl Check for TokenRevoked {
    fn check(&self) -> Result<(), String> {
        if let Some(jti) = &self.jti
            && !(1..=64).contains(&jti.len())
        {
            return Err("`jti` must be 1 to 64 characters".into());
        }
        within("issued_before_ms", self.issued_before_ms, 0, i64::MAX)?;
        within("until", self.until, 0, i64::MAX)
    }
}

impl Check for RefundOrder {
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn line(quantity: i64, unit_price_cents: i64) -> OrderLine {
        OrderLine {
            product_id: Uuid::nil(),
            quantity,
            unit_price_cents,
        }
    }

    fn completed(items: Vec<OrderLine>) -> OrderCompleted {
        OrderCompleted {
            order_id: Uuid::nil(),
            user_id: Uuid::nil(),
            payment_id: Uuid::nil(),
            items,
            total_cents: 100,
        }
    }

    #[test]
    fn lines_out_of_bounds_are_refused() {
        assert!(completed(vec![line(2, 50)]).check().is_ok());
        for bad in [
            vec![],
            vec![line(0, 1)],
            vec![line(-1, 1)],
            vec![
                line(4_611_686_018_427_387_904, 1),
                line(4_611_686_018_427_387_904, 1),
            ],
            vec![line(1, -5)],
            vec![line(1, MAX_PRICE_CENTS + 1)],
            (0..=MAX_ORDER_LINES).map(|_| line(1, 1)).collect(),
        ] {
            assert!(completed(bad.clone()).check().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_order_placed_must_add_up() {
        let placed = |subtotal, fee, total| OrderPlaced {
            order_id: Uuid::nil(),
            user_id: Uuid::nil(),
            items: vec![line(2, 500), line(1, 250)],
            subtotal_cents: subtotal,
            fee_cents: fee,
            total_cents: total,
        };
        assert!(placed(1250, 250, 1500).check().is_ok());
        assert!(placed(1250, 250, 1).check().is_err());
        assert!(placed(1, 250, 251).check().is_err());
        assert!(placed(1250, -250, 1000).check().is_err());
    }
}
