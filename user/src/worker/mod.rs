//! The user worker: group `user` on `password-reset-requested`, delivering reset links through
//! the [`mailer`]; its one route is in [`routes`].

pub mod mailer;
pub mod password_reset;

use common::{events::PasswordResetRequested, runtime::Routes};

pub use password_reset::PasswordResetHandler;

/// The consumer group of the user service.
pub const GROUP: &str = crate::SERVICE;

/// The event handlers of the group; their streams are the ones the user service reads.
pub fn routes() -> Routes<PasswordResetHandler> {
    Routes::new(GROUP).on::<PasswordResetRequested>(password_reset::handle)
}
