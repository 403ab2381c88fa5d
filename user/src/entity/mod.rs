//! sea-orm entities of the user database.

pub mod password_reset;
pub mod refresh_token;
pub mod user;
