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
