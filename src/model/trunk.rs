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
