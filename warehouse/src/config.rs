//! Settings of the warehouse beyond the mesh's own ([`common::config::MeshArgs`]): flags with
//! environment fallbacks, flattened into the binary's CLI.

use clap::{Args, builder::BoolishValueParser};

/// Carrier of the shipments this warehouse dispatches when none is configured.
pub const DEFAULT_CARRIER: &str = "mesh-express";

/// How the warehouse dispatches shipments.
#[derive(Debug, Clone, Args)]
pub struct WarehouseArgs {
    /// Ship every shipment as soon as its stock is reserved (`true`, the default), or leave it
    /// `pending` for an admin to ship or fail through the API (`false`).
    #[arg(
        long,
        env = "MESH_WAREHOUSE_AUTO_DISPATCH",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_parser = BoolishValueParser::new(),
    )]
    pub auto_dispatch: bool,

    /// Carrier named on dispatched shipments (and in `order-shipped`).
    #[arg(long, env = "MESH_WAREHOUSE_CARRIER", default_value = DEFAULT_CARRIER)]
    pub carrier: String,
}

/// The same defaults as the flags.
impl Default for WarehouseArgs {
    fn default() -> Self {
        Self {
            auto_dispatch: true,
            carrier: DEFAULT_CARRIER.to_owned(),
        }
    }
}
