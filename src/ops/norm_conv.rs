//! `conv(relu(BN(x)), w)` as one op: the BatchNorm + ReLU that opens a residual block,
//! applied inside the block's second convolution as it reads its input.
//!
//! Why: as two ops, BatchNorm + ReLU writes its output map and the convolution reads it
//! back and keeps it for the weight gradient. Here the convolution's plane fill computes
//! `max(x·scale + shift, 0)` per channel while it copies `x` (the implicit GEMM's fill, see
//! `implicit_gemm`), and the weight gradient's fill recomputes it: the normalised map is
//! never written, and the backward keeps only `x`, which BatchNorm keeps anyway. That is
//! one map fewer per block at the backward peak, and two passes over it fewer per forward.
//!
//! Fused on flex and candle (bare or under `Autodiff`), where both the fused BatchNorm and
//! the fast convolution run; everywhere else (and for dilation, groups or other dtypes) it
//! is [`batch_norm_relu_train`] followed by [`conv2d`], the same arithmetic.

use core::any::TypeId;
use std::sync::Arc;

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, FloatTensor};
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};

use super::batch_norm::{
    BatchStats, SavedBn, batch_norm_relu_train, bn_label, inv_std, map_traffic, scale_shift,
};
use super::conv::{SavedConv, conv2d_with_stats, geom};
use super::host::{cast, device_tensor, host};
use super::kernels::{ConvGeom, NormRelu, conv_forward};
use crate::step_profile::{Work, kernel};

/// `conv2d(relu(BN(x)), weight)` in training mode with affine BatchNorm parameters and a
/// bias-free convolution. `stats`: the batch statistics of `x` where its convolution computed
/// them ([`super::conv2d_with_stats`]).
///
/// Returns `(y, mean, var, y_stats)`: the convolution's output, the BatchNorm's
/// per-channel batch statistics `[C]` as [`super::batch_norm_train`] returns them
/// (constants, for the running statistics), and the batch statistics of `y` for the
/// BatchNorm that follows (as [`super::conv2d_with_stats`]). Gradients flow to `x`,
/// `gamma`, `beta` and `weight`.
pub fn batch_norm_relu_conv2d<B: Backend>(
    x: Tensor<B, 4>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    eps: f64,
    weight: Tensor<B, 4>,
    options: ConvOptions<2>,
    stats: Option<BatchStats>,
) -> NormConvOut<B> {
    let unfused = |x, gamma, beta, weight, options, stats| {
        let (h, mean, var) = batch_norm_relu_train(x, Some(gamma), Some(beta), eps, stats);
        let (y, y_stats) = conv2d_with_stats(h, weight, options);
        (y, mean, var, y_stats)
    };
    let fused = [x.dtype(), gamma.dtype(), beta.dtype(), weight.dtype()]
        .iter()
        .all(|d| *d == DType::F32)
        && options.dilation == [1, 1]
        && options.groups == 1;
    if !fused {
        return unfused(x, gamma, beta, weight, options, stats);
    }
    let device = x.device();
    let c = x.dims()[1];
    match dispatch(Inputs {
        x,
        gamma,
        beta,
        weight,
        options,
        eps,
        stats,
    }) {
        Ok((y, mean, var, y_stats)) => {
            let stat = |v: Vec<f32>| Tensor::<B, 1>::from_data(TensorData::new(v, [c]), &device);
            (y, stat(mean), stat(var), y_stats)
        }
        Err(i) => unfused(i.x, i.gamma, i.beta, i.weight, i.options, i.stats),
    }
}

/// What [`batch_norm_relu_conv2d`] returns: `(y, mean, var, y_stats)`.
pub type NormConvOut<B> = (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>, Option<BatchStats>);

/// The op's arguments, moved as one through the backend routing.
struct Inputs<B: Backend> {
    x: Tensor<B, 4>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    weight: Tensor<B, 4>,
    options: ConvOptions<2>,
    eps: f64,
    stats: Option<BatchStats>,
}

impl<B: Backend> Inputs<B> {
    /// The same arguments as tensors of `X`, which is `B` (checked by `TypeId`).
    fn cast<X: Backend>(self) -> Inputs<X> {
        Inputs {
            x: cast(self.x),
            gamma: cast(self.gamma),
            beta: cast(self.beta),
            weight: cast(self.weight),
            options: self.options,
            eps: self.eps,
            stats: self.stats,
        }
    }
}

type Out<B> = (Tensor<B, 4>, Vec<f32>, Vec<f32>, Option<BatchStats>);

/// Routes flex and candle to the fused kernels; returns the inputs otherwise.
#[allow(deprecated)] // burn-candle
fn dispatch<B: Backend>(inputs: Inputs<B>) -> Result<Out<B>, Box<Inputs<B>>> {
    let id = TypeId::of::<B>();
    macro_rules! route {
        ($inner:ty) => {
            if id == TypeId::of::<$inner>() {
                let (y, m, v, s) = fused_plain::<$inner>(inputs.cast());
                return Ok((cast(y), m, v, s));
            }
            if id == TypeId::of::<Autodiff<$inner>>() {
                let (y, m, v, s) = fused_autodiff::<$inner>(inputs.cast());
                return Ok((cast(y), m, v, s));
            }
        };
    }
    // Not ndarray: its BatchNorm stays composite (see `batch_norm::dispatch`).
    #[cfg(feature = "flex")]
    route!(burn::backend::Flex);
    #[cfg(feature = "candle")]
    route!(burn::backend::Candle);
    let _ = id;
    Err(Box::new(inputs))
}

/// The forward on host values: BatchNorm statistics of `x`, then the convolution with the
/// normalisation applied in its input read.
struct Forward {
    y: Vec<f32>,
    /// The batch statistics of `y`, taken in the convolution.
    y_stats: BatchStats,
    mean: Vec<f32>,
    var: Vec<f32>,
    inv_std: Vec<f32>,
    scale: Vec<f32>,
    shift: Vec<f32>,
}

#[allow(clippy::too_many_arguments)]
fn forward(
    x: &[f32],
    stats: Option<BatchStats>,
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
    w: &[f32],
    co: usize,
    g: &ConvGeom,
) -> Forward {
    let dims = [g.n, g.c, g.h, g.w];
    // The normalisation itself runs inside the convolution's input read: only a statistics
    // pass is BatchNorm's own, and none when the producing convolution gave them.
    let (mean, var) = kernel(
        "batchnorm+relu forward",
        || bn_label(dims),
        map_traffic(dims, usize::from(!BatchStats::covers(&stats, dims))),
        || BatchStats::or_compute(stats, x, dims),
    );
    let inv = inv_std(&var, eps);
    let (scale, shift) = scale_shift(&mean, &inv, Some((gamma, beta)));
    let norm = NormRelu {
        scale: &scale,
        shift: &shift,
    };
    let (y, y_stats) = kernel(
        "conv forward",
        || g.label(co),
        Work::flops(g.product_flops(co)),
        || conv_forward(x, w, co, g, Some(norm), true),
    );
    let y_stats = BatchStats::new(y_stats.expect("asked for"), [g.n, co, g.ho, g.wo]);
    Forward {
        y,
        y_stats,
        mean,
        var,
        inv_std: inv,
        scale,
        shift,
    }
}

/// The convolution's geometry and output channels for these inputs.
fn shape<B: Backend>(i: &Inputs<B>) -> (ConvGeom, usize) {
    let w_dims = i.weight.dims();
    (geom(i.x.dims(), w_dims, &i.options), w_dims[0])
}

/// Fused forward on a non-autodiff backend.
fn fused_plain<B: Backend>(i: Inputs<B>) -> Out<B> {
    let (g, co) = shape(&i);
    let device = i.x.device();
    let [xh, wh] = [i.x, i.weight].map(|t| host::<B, 4>(t.into_primitive().tensor()));
    let [gh, bh] = [i.gamma, i.beta].map(|t| host::<B, 1>(t.into_primitive().tensor()));
    let f = forward(&xh, i.stats, &gh, &bh, i.eps, &wh, co, &g);
    let y = device_tensor::<B, 4>(f.y, [g.n, co, g.ho, g.wo], &device);
    let y = Tensor::from_primitive(TensorPrimitive::Float(y));
    (y, f.mean, f.var, Some(f.y_stats))
}

/// What the backward keeps: BatchNorm's state (its input `x` and constants) and the
/// convolution's (the same `x`, shared, and the weight).
#[derive(Debug, Clone)]
struct SavedNormConv {
    bn: SavedBn,
    conv: SavedConv,
}

/// Backward of `conv(relu(BN(x)), w)` (parents: x, γ, β, w).
#[derive(Debug)]
struct NormConvBackward;

impl<B: Backend> Backward<B, 4> for NormConvBackward {
    type State = SavedNormConv;

    fn backward(self, ops: Ops<SavedNormConv, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_g, node_b, node_w] = ops.parents;
        let dy_t = grads.consume::<B>(&ops.node);
        let device = B::float_device(&dy_t);
        let s = &ops.state;
        let dy = host::<B, 4>(dy_t);
        let (scale, shift) =
            s.bn.relu
                .as_ref()
                .expect("saved with the ReLU's scale and shift");
        if let Some(node) = node_w {
            let norm = NormRelu { scale, shift };
            grads.register::<B>(node.id, s.conv.weight_grad::<B>(&dy, Some(norm), &device));
        }
        if node_x.is_none() && node_g.is_none() && node_b.is_none() {
            return;
        }
        // The gradient of the normalised map, then BatchNorm + ReLU's input gradient
        // written over it.
        let mut gin = s.conv.input_grad(&dy);
        let (dgamma, dbeta) = kernel(
            "batchnorm+relu backward",
            || bn_label(s.bn.dims),
            // As `SavedBn::grads`: the sums, then dx over the gradient.
            map_traffic(s.bn.dims, 5),
            || s.bn.grads_in_place(&mut gin),
        );
        let c = s.bn.dims[1];
        let grads_of: [(_, FloatTensor<B>); 3] = [
            (node_x, device_tensor::<B, 4>(gin, s.bn.dims, &device)),
            (node_g, device_tensor::<B, 1>(dgamma, [c], &device)),
            (node_b, device_tensor::<B, 1>(dbeta, [c], &device)),
        ];
        for (parent, grad) in grads_of {
            if let Some(node) = parent {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

/// Fused forward on `Autodiff<B>`, recording [`NormConvBackward`].
fn fused_autodiff<B: Backend>(i: Inputs<Autodiff<B>>) -> Out<Autodiff<B>> {
    let (g, co) = shape(&i);
    let w_dims = i.weight.dims();
    let device = i.x.device();
    let [x, w] = [i.x, i.weight].map(|t| t.into_primitive().tensor());
    let [gamma, beta] = [i.gamma, i.beta].map(|t| t.into_primitive().tensor());
    let xh = host::<B, 4>(x.primitive);
    let wh = host::<B, 4>(w.primitive);
    let gh = host::<B, 1>(gamma.primitive);
    let bh = host::<B, 1>(beta.primitive);
    let f = forward(&xh, i.stats, &gh, &bh, i.eps, &wh, co, &g);
    let y = device_tensor::<B, 4>(f.y, [g.n, co, g.ho, g.wo], &device);
    let out = match NormConvBackward
        .prepare::<NoCheckpointing>([x.node, gamma.node, beta.node, w.node])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let x = Arc::new(xh);
            let state = SavedNormConv {
                bn: SavedBn {
                    x: x.clone(),
                    mean: Arc::new(f.mean.clone()),
                    inv_std: Arc::new(f.inv_std),
                    gamma: Some(Arc::new(gh)),
                    relu: Some((Arc::new(f.scale), Arc::new(f.shift))),
                    dims: [g.n, g.c, g.h, g.w],
                },
                conv: SavedConv {
                    x,
                    w: Arc::new(wh),
                    w_dims,
                    g,
                },
            };
            prep.finish(state, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    let out = Tensor::from_primitive(TensorPrimitive::Float(out));
    (out, f.mean, f.var, Some(f.y_stats))
}
