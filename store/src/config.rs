//! Settings of the store service on top of the mesh's (`MeshArgs`).

use clap::Args;

/// The fee when nothing is configured, in percent of the subtotal (as in the tutorials).
pub const DEFAULT_FEE_PERCENT: u32 = 20;

/// Flags and environment of the store service.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Fee added to every order, in percent of its subtotal (0 to 100). The fee is rounded half
    /// up to whole cents: `fee = (subtotal × percent + 50) / 100`.
    #[arg(
        long = "store-fee-percent",
        env = "STORE_FEE_PERCENT",
        default_value_t = DEFAULT_FEE_PERCENT,
        value_parser = clap::value_parser!(u32).range(0..=100)
    )]
    pub fee_percent: u32,
}

impl Default for StoreArgs {
    fn default() -> Self {
        Self {
            fee_percent: DEFAULT_FEE_PERCENT,
        }
    }
}
