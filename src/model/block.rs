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

/// `(conv_with_stats(main, x), conv_with_stats(shortcut, x))` as one op where the fast path
/// can run the shortcut's 1x1 projection on `main`'s input planes
/// (`ops::conv2d_with_shortcut_stats`).
pub(crate) fn conv_with_shortcut<B: Backend>(
    main: &Conv2d<B>,
    shortcut: &Conv2d<B>,
    x: Tensor<B, 4>,
) -> (WithStats<B>, WithStats<B>) {
    if !super::fast_ops() || main.bias.is_some() || shortcut.bias.is_some() {
        let s = conv_with_stats(shortcut, x.clone());
        return (conv_with_stats(main, x), s);
    }
    crate::ops::conv2d_with_shortcut_stats(
        x,
        main.weight.val(),
        conv_options(main),
        shortcut.weight.val(),
        conv_options(shortcut),
    )
}

/// The options of a convolution built by [`conv`]: symmetric padding of kernel / 2.
pub(crate) fn conv_options<B: Backend>(m: &Conv2d<B>) -> ConvOptions<2> {
    let pad = m.kernel_size[0] / 2;
    ConvOptions::new(m.stride, [pad, pad], m.dilation, m.groups)
}

impl<B: Backend> BasicBlock<B> {
    /// Apply the block to `[N, C, H, W]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let (h, shortcut) = match &self.downsample {
            Some(d) => {
                let (h, s) = conv_with_shortcut(&self.conv1, &d.conv, x);
                (h, d.bn.forward4_with(s))
            }
            None => (conv_with_stats(&self.conv1, x.clone()), x),
        };
        let y = self.bn1.forward4_relu_conv(h, &self.conv2);
        self.bn2.forward4_add_relu(y, shortcut)
    }
}
#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::Distribution;
    use burn::tensor::activation::relu;

    type B = Autodiff<Flex>;

    /// Training-mode BatchNorm from burn's stock ops (batch statistics, biased variance).
    fn stock_bn(bn: &BatchNorm<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [_, c, _, _] = x.dims();
        let mean = x.clone().mean_dim(0).mean_dim(2).mean_dim(3);
        let centred = x - mean;
        let var = centred.clone().square().mean_dim(0).mean_dim(2).mean_dim(3);
        let gamma = bn
            .gamma
            .as_ref()
            .expect("affine")
            .val()
            .reshape([1, c, 1, 1]);
        let beta = bn
            .beta
            .as_ref()
            .expect("affine")
            .val()
            .reshape([1, c, 1, 1]);
        centred / (var + bn.epsilon).sqrt() * gamma + beta
    }

    /// The block as its doc comment writes it, from burn's stock convolution and ops.
    fn stock_forward(b: &BasicBlock<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let shortcut = match &b.downsample {
            Some(d) => stock_bn(&d.bn, d.conv.forward(x.clone())),
            None => x.clone(),
        };
        let h = relu(stock_bn(&b.bn1, b.conv1.forward(x)));
        relu(stock_bn(&b.bn2, b.conv2.forward(h)) + shortcut)
    }

    /// A downsampling block (its shortcut's projection sharing `conv1`'s input planes on
    /// the fast path) and an identity block give the stock block's output and gradients
    /// for the input, both first convolutions and the projection.
    #[test]
    fn block_matches_stock_ops() {
        let dev = Default::default();
        <B as Backend>::seed(&dev, 3);
        for (cin, cout, stride, hw) in [(16, 32, 2, 9), (16, 16, 1, 8)] {
            let block = BasicBlockConfig::new(cin, cout)
                .with_stride(stride)
                .init::<B>(&dev);
            let x = Tensor::<B, 4>::random([3, cin, hw, hw], Distribution::Normal(0., 1.), &dev);
            let r = Tensor::<B, 4>::random(
                [3, cout, hw.div_ceil(stride), hw.div_ceil(stride)],
                Distribution::Normal(0., 1.),
                &dev,
            );
            let run = |stock: bool| {
                let x = x.clone().require_grad();
                let y = if stock {
                    stock_forward(&block, x.clone())
                } else {
                    block.forward(x.clone())
                };
                let g = (y.clone() * r.clone()).sum().backward();
                let mut grads = vec![
                    x.grad(&g).expect("input grad"),
                    block.conv1.weight.grad(&g).expect("conv1 grad"),
                    block.conv2.weight.grad(&g).expect("conv2 grad"),
                ];
                if let Some(d) = &block.downsample {
                    grads.push(d.conv.weight.grad(&g).expect("projection grad"));
                }
                (y.inner(), grads)
            };
            let ((y0, g0), (y1, g1)) = (run(true), run(false));
            let close = |a: Tensor<Flex, 4>, b: Tensor<Flex, 4>, what: &str| {
                let scale = b.clone().abs().max().into_scalar().max(1.0);
                let err = (a - b).abs().max().into_scalar() / scale;
                assert!(err < 1e-4, "{cin}->{cout} s{stride}: {what} off by {err}");
            };
            close(y1, y0, "output");
            for (i, (a, b)) in g1.into_iter().zip(g0).enumerate() {
                close(a, b, &format!("gradient {i}"));
            }
        }
    }
}
