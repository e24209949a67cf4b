//! The residual CNN trunk: a 3x3 stem and stages of basic blocks, then global average pooling.
//!
//! One structure covers both presets: the compact edge trunk (32 → 32, 64, 128) and ResNet-18
//! with the CIFAR stem (3x3 stride 1, no max-pool; 64 → 64, 128, 256, 512, two blocks each).

use super::block::{BasicBlock, BasicBlockConfig, conv, conv_with_stats};
use super::norm::{BatchNorm, BatchNormConfig};
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

/// One stage: `blocks` basic blocks of `width` channels, the first with `stride`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageConfig {
    /// Output channels of the stage.
    pub width: usize,
    /// Number of basic blocks.
    pub blocks: usize,
    /// Stride of the first block.
    pub stride: usize,
}

/// Shape of a [`ResidualTrunk`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrunkConfig {
    /// Image channels (1 or 3).
    pub in_channels: usize,
    /// Channels of the stem convolution.
    pub stem_width: usize,
    /// The stages, in order.
    pub stages: Vec<StageConfig>,
}

impl TrunkConfig {
    /// The compact edge trunk: stem `width`, stages `width`, `2 width`, `4 width` with
    /// strides 1, 2, 2 and `blocks` blocks each (width 32, 1 block = the reference recipe).
    pub fn compact(in_channels: usize, width: usize, blocks: usize) -> Self {
        let stage = |mult: usize, stride: usize| StageConfig {
            width: width * mult,
            blocks,
            stride,
        };
        Self {
            in_channels,
            stem_width: width,
            stages: vec![stage(1, 1), stage(2, 2), stage(4, 2)],
        }
    }

    /// ResNet-18 with the CIFAR stem; `width` 64 is the standard network (512-d output).
    pub fn resnet18(in_channels: usize, width: usize) -> Self {
        let stage = |mult: usize, stride: usize| StageConfig {
            width: width * mult,
            blocks: 2,
            stride,
        };
        Self {
            in_channels,
            stem_width: width,
            stages: vec![stage(1, 1), stage(2, 2), stage(4, 2), stage(8, 2)],
        }
    }

    /// Dimension of the pooled feature vector.
    pub fn out_dim(&self) -> usize {
        self.stages.last().map_or(self.stem_width, |s| s.width)
    }

    /// Total downsampling factor of the trunk.
    pub fn downsampling(&self) -> usize {
        self.stages.iter().map(|s| s.stride).product()
    }

    /// Multiply-accumulates of one forward pass on an `h x w` image (convolutions only).
    pub fn macs(&self, h: usize, w: usize) -> u64 {
        let conv_macs = |cin: usize, cout: usize, k: usize, oh: usize, ow: usize| {
            (cin * cout * k * k * oh * ow) as u64
        };
        let (mut h, mut w) = (h, w);
        let mut total = conv_macs(self.in_channels, self.stem_width, 3, h, w);
        let mut cin = self.stem_width;
        for stage in &self.stages {
            for b in 0..stage.blocks {
                let s = if b == 0 { stage.stride } else { 1 };
                let (oh, ow) = (h.div_ceil(s), w.div_ceil(s));
                total += conv_macs(cin, stage.width, 3, oh, ow);
                total += conv_macs(stage.width, stage.width, 3, oh, ow);
                if s != 1 || cin != stage.width {
                    total += conv_macs(cin, stage.width, 1, oh, ow);
                }
                (h, w, cin) = (oh, ow, stage.width);
            }
        }
        total
    }

    /// The forward multiply-accumulates per image (of [`Self::macs`]) that the convolutions
    /// run as Winograd F(2x2, 3x3) do not do ([`crate::ops::winograd_conv`]): each such 3x3
    /// convolution does 16 per 2x2 output tile and channel pair instead of 9 per output.
    /// Their input gradients save as much; weight gradients stay direct.
    pub fn winograd_saved_macs(&self, h: usize, w: usize) -> u64 {
        let saved = |cin: usize, cout: usize, k: usize, s: usize, (h, w): (usize, usize)| {
            if !crate::ops::winograd_conv(cin, cout, k, s, [h, w]) {
                return 0;
            }
            let tiles = (h.div_ceil(2) * w.div_ceil(2)) as u64;
            ((cin * cout * k * k * h * w) as u64).saturating_sub(16 * (cin * cout) as u64 * tiles)
        };
        let (mut h, mut w) = (h, w);
        let mut total = saved(self.in_channels, self.stem_width, 3, 1, (h, w));
        let mut cin = self.stem_width;
        for stage in &self.stages {
            for b in 0..stage.blocks {
                let s = if b == 0 { stage.stride } else { 1 };
                let (oh, ow) = (h.div_ceil(s), w.div_ceil(s));
                // The block's first convolution reads the input map at the block's stride.
                total += saved(cin, stage.width, 3, s, (h, w));
                total += saved(stage.width, stage.width, 3, 1, (oh, ow));
                (h, w, cin) = (oh, ow, stage.width);
            }
        }
        total
    }

    /// Initialise the trunk.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ResidualTrunk<B> {
        let mut layers = Vec::with_capacity(self.stages.len());
        let mut cin = self.stem_width;
        for stage in &self.stages {
            let blocks = (0..stage.blocks)
                .map(|b| {
                    let stride = if b == 0 { stage.stride } else { 1 };
                    let block = BasicBlockConfig::new(cin, stage.width).with_stride(stride);
                    cin = stage.width;
                    block.init(device)
                })
                .collect();
            layers.push(blocks);
        }
        ResidualTrunk {
            conv1: conv(self.in_channels, self.stem_width, 3, 1, device),
            bn1: BatchNormConfig::new(self.stem_width).init(device),
            layers,
        }
    }
}

/// Stem + residual stages + global average pooling: images `[N, C, H, W]` → features `[N, D]`.
#[derive(Module, Debug)]
pub struct ResidualTrunk<B: Backend> {
    /// Stem 3x3 convolution, stride 1 (no max-pool: small images keep their resolution).
    pub conv1: Conv2d<B>,
    /// Stem norm.
    pub bn1: BatchNorm<B>,
    /// Stages of basic blocks (`layers[i][j]` is PyTorch's `layer{i+1}.{j}`).
    pub layers: Vec<Vec<BasicBlock<B>>>,
}

impl<B: Backend> ResidualTrunk<B> {
    /// Features of a batch of images.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let mut x = self.bn1.forward4_relu(conv_with_stats(&self.conv1, images));
        for block in self.layers.iter().flatten() {
            x = block.forward(x);
        }
        // Global average pooling via a mean over a flattened view: candle has no
        // adaptive_avg_pool2d, and the 3-D mean is cheap on every backend.
        let [n, c, h, w] = x.dims();
        x.reshape([n, c, h * w]).mean_dim(2).reshape([n, c])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn winograd_saves_the_multiplications_of_the_3x3_stride1_layers_it_runs() {
        let trunk = TrunkConfig::compact(1, 32, 1);
        let saved = trunk.winograd_saved_macs(28, 28);
        if !crate::ops::winograd_in_use() {
            assert_eq!(saved, 0, "no Winograd on this CPU, nothing saved");
            return;
        }
        // Stage 1's two 32 → 32 convolutions at 28x28 and stage 2's second 64 → 64 one at
        // 14x14: 9 MACs per output against 16 per 2x2 tile. Not the 1-channel stem, the
        // stride-2 convolutions, nor stage 3's 7x7 maps.
        let direct = |c: u64, side: u64| c * c * 9 * side * side;
        let winograd = |c: u64, side: u64| c * c * 16 * (side / 2) * (side / 2);
        let want = 2 * (direct(32, 28) - winograd(32, 28)) + direct(64, 14) - winograd(64, 14);
        assert_eq!(saved, want);
        assert!(saved < trunk.macs(28, 28));
        // An odd map: its last row and column of tiles are half used.
        let odd = TrunkConfig::compact(16, 16, 1).winograd_saved_macs(15, 15);
        let stage1 = 16 * 16 * 9 * 15 * 15 - 16 * 16 * 16 * 8 * 8;
        // The stem (16 → 16 at 15x15) and stage 1's two convolutions; stage 2's 8x8 maps are
        // below 14.
        assert_eq!(odd, 3 * stage1);
        // The width-64 trunk at 32 px: stage 1 at 32x32, stage 2's second convolution at
        // 16x16 and stage 3's at 8x8 (even, 256 channels).
        let wide = TrunkConfig::compact(3, 64, 1).winograd_saved_macs(32, 32);
        let want = 2 * (direct(64, 32) - winograd(64, 32))
            + (direct(128, 16) - winograd(128, 16))
            + (direct(256, 8) - winograd(256, 8));
        assert_eq!(wide, want);
    }
}
