//! The residual basic block (two 3x3 convolutions), as in ResNet-18.

use super::norm::{BatchNorm, BatchNormConfig, WithStats};
use burn::config::Config;
use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, backend::Backend};

/// Builds a [`BasicBlock`].
#[derive(Config, Debug)]
pub struct BasicBlockConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Stride of the first convolution (2 halves the resolution).
    #[config(default = 1)]
    pub stride: usize,
}

/// `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`.
#[derive(Module, Debug)]
pub struct BasicBlock<B: Backend> {
    /// First 3x3 convolution (carries the stride).
    pub conv1: Conv2d<B>,
    /// Norm after `conv1`.
    pub bn1: BatchNorm<B>,
    /// Second 3x3 convolution.
    pub conv2: Conv2d<B>,
    /// Norm after `conv2`.
    pub bn2: BatchNorm<B>,
    /// 1x1 projection of the input when the shape changes.
    pub downsample: Option<Downsample<B>>,
}

/// The 1x1 convolution + BatchNorm on the shortcut of a block that changes shape.
#[derive(Module, Debug)]
pub struct Downsample<B: Backend> {
    /// 1x1 strided convolution.
    pub conv: Conv2d<B>,
    /// Norm after `conv`.
    pub bn: BatchNorm<B>,
}

/// A bias-free convolution: every one here is followed by BatchNorm, which cancels a bias.
pub(crate) fn conv<B: Backend>(
    cin: usize,
    cout: usize,
    kernel: usize,
    stride: usize,
    device: &B::Device,
) -> Conv2d<B> {
    let pad = kernel / 2;
    Conv2dConfig::new([cin, cout], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .init(device)
}

impl BasicBlockConfig {
    /// Initialise the block.
    pub fn init<B: Backend>(&self, device: &B::Device) -> BasicBlock<B> {
        let (cin, cout, s) = (self.in_channels, self.out_channels, self.stride);
        let downsample = (s != 1 || cin != cout).then(|| Downsample {
            conv: conv(cin, cout, 1, s, device),
            bn: BatchNormConfig::new(cout).init(device),
        });
        BasicBlock {
            conv1: conv(cin, cout, 3, s, device),
            bn1: BatchNormConfig::new(cout).init(device),
            conv2: conv(cout, cout, 3, 1, device),
            bn2: BatchNormConfig::new(cout).init(device),
            downsample,
        }
    }
}

/// A convolution through the fast im2col + GEMM kernels of `src/ops` (which fall back to
/// burn's own op where they do not apply), or burn's op when fast ops are off.
pub(crate) fn apply_conv<B: Backend>(m: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    if !super::fast_ops() {
        return m.forward(x);
    }
    crate::ops::conv2d(
        x,
        m.weight.val(),
        m.bias.as_ref().map(|b| b.val()),
        conv_options(m),
    )
}

/// [`apply_conv`] with the output's batch statistics where the fast path computed them
/// (a bias-free convolution: every one here is followed by BatchNorm).
pub(crate) fn conv_with_stats<B: Backend>(m: &Conv2d<B>, x: Tensor<B, 4>) -> WithStats<B> {
    if !super::fast_ops() || m.bias.is_some() {
        return (apply_conv(m, x), None);
    }
    crate::ops::conv2d_with_stats(x, m.weight.val(), conv_options(m))
}

/// The options of a convolution built by [`conv`]: symmetric padding of kernel / 2.
pub(crate) fn conv_options<B: Backend>(m: &Conv2d<B>) -> ConvOptions<2> {
    let pad = m.kernel_size[0] / 2;
    ConvOptions::new(m.stride, [pad, pad], m.dilation, m.groups)
}

impl<B: Backend> BasicBlock<B> {
    /// Apply the block to `[N, C, H, W]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let shortcut = match &self.downsample {
            Some(d) => d.bn.forward4_with(conv_with_stats(&d.conv, x.clone())),
            None => x.clone(),
        };
        let h = conv_with_stats(&self.conv1, x);
        let y = self.bn1.forward4_relu_conv(h, &self.conv2);
        self.bn2.forward4_add_relu(y, shortcut)
    }
}
