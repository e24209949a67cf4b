//! Model shape as it appears in the TOML config.

use super::trunk::TrunkConfig;
use serde::{Deserialize, Serialize};

/// Which trunk to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TrunkKind {
    /// Compact residual CNN for edge devices (stages width, 2 width, 4 width).
    Compact,
    /// ResNet-18 with the CIFAR stem (3x3 stride 1, no max-pool).
    Resnet18,
}

/// The `[model]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Trunk architecture.
    pub trunk: TrunkKind,
    /// Base width (stem channels): 32 for the compact trunk, 64 for standard ResNet-18.
    pub width: usize,
    /// Basic blocks per stage of the compact trunk (ResNet-18 always has 2).
    pub blocks: usize,
    /// Image channels the trunk takes (1 or 3); frames are converted to this.
    pub in_channels: usize,
    /// Square input size in pixels (frames are resized/cropped to it).
    pub image_size: usize,
    /// Hidden width of the projector.
    pub projector_hidden: usize,
    /// Output width of the projector (`d`, the size of F and Wp).
    pub dim: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            trunk: TrunkKind::Compact,
            width: 32,
            blocks: 1,
            in_channels: 1,
            image_size: 28,
            projector_hidden: 512,
            dim: 128,
        }
    }
}

impl ModelConfig {
    /// The trunk this config describes.
    pub fn trunk_config(&self) -> TrunkConfig {
        match self.trunk {
            TrunkKind::Compact => TrunkConfig::compact(self.in_channels, self.width, self.blocks),
            TrunkKind::Resnet18 => TrunkConfig::resnet18(self.in_channels, self.width),
        }
    }

    /// Check the values, naming the offending key.
    pub fn validate(&self) -> Result<(), String> {
        if !matches!(self.in_channels, 1 | 3) {
            return Err(format!(
                "model.in_channels = {}: must be 1 or 3",
                self.in_channels
            ));
        }
        for (key, value) in [
            ("model.width", self.width),
            ("model.blocks", self.blocks),
            ("model.projector_hidden", self.projector_hidden),
            ("model.dim", self.dim),
        ] {
            if value == 0 {
                return Err(format!("{key} must be at least 1"));
            }
        }
        let down = self.trunk_config().downsampling();
        if self.image_size < 2 * down {
            return Err(format!(
                "model.image_size = {}: the {:?} trunk downsamples {down}x, so images must be at least {} px",
                self.image_size,
                self.trunk,
                2 * down
            ));
        }
        Ok(())
    }
}
