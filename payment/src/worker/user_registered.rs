//! `user-registered`: open the user's wallet with the starting credit. The wallet's primary key
//! makes it happen once even when the registration is announced under several event ids.

use common::{Envelope, db::inbox, events::UserRegistered, runtime::HandleError};

use super::{GROUP, PaymentHandler};
use crate::ledger;

pub(super) async fn handle(
    h: &PaymentHandler,
    envelope: &Envelope,
    user: UserRegistered,
) -> Result<(), HandleError> {
    let Some(txn) = inbox::begin_once(&h.db, GROUP, envelope).await? else {
        tracing::debug!(user.id = %user.user_id, "already handled");
        return Ok(());
    };
    let opened = ledger::open_wallet(&txn, user.user_id, h.starting_credit_cents).await?;
    txn.commit().await?;
    if opened {
        metrics::counter!("payment_wallets_opened_total").increment(1);
        tracing::info!(
            user.id = %user.user_id,
            credit_cents = h.starting_credit_cents,
            "wallet opened"
        );
    }
    Ok(())
}
