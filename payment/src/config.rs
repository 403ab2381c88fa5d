//! Settings of the payment service on top of the mesh's (`MeshArgs`).

use clap::Args;

/// Credit a new wallet opens with when nothing is configured: 100.00 in cents.
pub const DEFAULT_STARTING_CREDIT_CENTS: i64 = 10_000;

/// Flags and environment of the payment service.
#[derive(Debug, Clone, Args)]
pub struct PaymentArgs {
    /// Cents every new wallet opens with (on `user-registered`); 0 or more.
    #[arg(
        long,
        env = "MESH_STARTING_CREDIT_CENTS",
        default_value_t = DEFAULT_STARTING_CREDIT_CENTS,
        value_parser = clap::value_parser!(i64).range(0..=1_000_000_000)
    )]
    pub starting_credit_cents: i64,
}

impl Default for PaymentArgs {
    fn default() -> Self {
        Self {
            starting_credit_cents: DEFAULT_STARTING_CREDIT_CENTS,
        }
    }
}
