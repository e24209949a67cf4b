//! Drop-in `forward`s for burn's `nn::conv::Conv2d` and `nn::BatchNorm` modules.
//!
//! The model keeps burn's modules for parameters, initialisation, records and EMA visitors
//! and only swaps the call: `ops::conv2d_forward(&self.conv, x)` instead of
//! `self.conv.forward(x)`, `ops::batch_norm_forward(&self.bn, x)` instead of
//! `self.bn.forward(x)`. Semantics match burn's modules exactly (including burn's running
//! statistics rule), so switching back and forth changes speed only.

use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::ops::ConvOptions;

use super::{batch_norm_eval, batch_norm_train, conv2d, update_running_stats};

/// `(start, end)` padding of burn's `PaddingConfig2d::Same` along one axis.
fn same_padding(kernel: usize, stride: usize, size_in: usize) -> (usize, usize) {
    let size_out = size_in.div_ceil(stride);
    let total = if size_out > 0 {
        ((size_out - 1) * stride + kernel).saturating_sub(size_in)
    } else {
        0
    };
    (total / 2, total - total / 2)
}

/// [`Conv2d::forward`] through [`conv2d`] (fast path where available). Asymmetric padding
/// (`Same` with an even kernel, or `Explicit` with unequal sides) uses the module's own
/// forward.
pub fn conv2d_forward<B: Backend>(m: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    let ((top, bottom), (left, right)) = match &m.padding {
        PaddingConfig2d::Valid => ((0, 0), (0, 0)),
        PaddingConfig2d::Same => (
            same_padding(m.kernel_size[0], m.stride[0], h),
            same_padding(m.kernel_size[1], m.stride[1], w),
        ),
        PaddingConfig2d::Explicit(t, l, b, r) => ((*t, *b), (*l, *r)),
    };
    if top != bottom || left != right {
        return m.forward(x);
    }
    conv2d(
        x,
        m.weight.val(),
        m.bias.as_ref().map(|b| b.val()),
        ConvOptions::new(m.stride, [top, left], m.dilation, m.groups),
    )
}

/// [`BatchNorm::forward`] through [`batch_norm_train`] / [`batch_norm_eval`], for any rank
/// `D >= 2` (`[N, C, ...]`). Like burn: batch statistics and a running-statistics update
/// when the backend tracks gradients (`B::ad_enabled`), running statistics otherwise; the
/// running variance averages the biased batch variance (burn's rule).
pub fn batch_norm_forward<B: Backend, const D: usize>(
    m: &BatchNorm<B>,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    assert!(D >= 2, "BatchNorm needs [N, C, ...], got rank {D}");
    let dims = x.dims();
    let (n, c) = (dims[0], dims[1]);
    let rest: usize = dims[2..].iter().product();
    let x4 = x.reshape([n, c, rest, 1]);
    let device = x4.device();
    let y = if B::ad_enabled(&device) {
        let (y, mean, var) =
            batch_norm_train(x4, Some(m.gamma.val()), Some(m.beta.val()), m.epsilon, None);
        let (rm, rv) = update_running_stats(
            m.running_mean.value_sync().to_device(&device),
            m.running_var.value_sync().to_device(&device),
            mean,
            var,
            n * rest,
            m.momentum,
            false,
        );
        m.running_mean.update(rm.detach());
        m.running_var.update(rv.detach());
        y
    } else {
        batch_norm_eval(
            x4,
            m.running_mean.value().to_device(&device),
            m.running_var.value().to_device(&device),
            Some(m.gamma.val()),
            Some(m.beta.val()),
            m.epsilon,
        )
    };
    y.reshape(dims)
}
