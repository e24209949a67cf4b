//! The networks: a residual CNN trunk, MLP heads, and the BatchNorm they share.

pub mod block;
pub mod config;
pub mod encoder;
pub mod head;
pub mod named;
pub mod norm;
pub mod trunk;

pub use config::{ModelConfig, TrunkKind};
pub use encoder::Encoder;
pub use head::{MlpHead, MlpHeadConfig};
pub use norm::{BatchNorm, BatchNormConfig};
pub use trunk::{ResidualTrunk, TrunkConfig};

/// Whether the model uses the fast CPU kernels of `src/ops` (im2col + GEMM convolution, fused
/// BatchNorm). On by default; `EDGESSL_STOCK_OPS=1` selects burn's stock ops instead, to
/// compare speed or rule out the kernels. Both are tested to agree within 1e-4.
pub fn fast_ops() -> bool {
    static FAST: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FAST.get_or_init(|| std::env::var_os("EDGESSL_STOCK_OPS").is_none_or(|v| v == "0"))
}
