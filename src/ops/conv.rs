//! 2-D convolution as per-sample im2col + GEMM, with an explicit backward.
//!
//! Why: burn 0.21 computes a convolution's input gradient with `conv_transpose2d` and its
//! weight gradient with a `conv2d` whose "kernel" is the whole output gradient. On flex the
//! former runs sequentially over the batch and the latter is a degenerate GEMM (M = KH*KW,
//! K = N*HO*WO). Here all three products are ordinary per-sample GEMMs (see `kernels`):
//!
//! * forward      `Y[n]  = W[CO,K] · cols[n][K,P]` (on x86-64 with AVX2 + FMA an implicit
//!   GEMM that reads the patches in place instead, see `implicit_gemm`)
//! * input grad   `dcols[n] = Wᵀ · dY[n]`, then `col2im` (on AVX2 + FMA, an implicit GEMM
//!   per stride phase of `dX` over the padded `dY` instead)
//! * weight grad  `dW = Σ_n dY[n] · cols[n]ᵀ` (cols recomputed, not stored: 9x the input;
//!   on AVX2 + FMA an implicit GEMM over groups of samples instead)
//!
//! The public [`conv2d`] is generic over `B: Backend`. It recognises the CPU backends
//! compiled into this crate (flex, ndarray, candle, each bare or under `Autodiff` with the
//! default checkpointing) by `TypeId` and routes them to the fast path; any other backend,
//! dtype or option (dilation, groups) falls back to burn's stock `conv2d`, so the function
//! is always a drop-in replacement.

use core::any::TypeId;

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, FloatTensor};
use burn::tensor::{DType, Tensor, TensorPrimitive};

use std::sync::Arc;

use super::batch_norm::BatchStats;
use super::host::{HostBuf, cast, device_tensor, host, host_mut};
use super::kernels::{
    ConvGeom, NormRelu, conv_backward_w, conv_backward_x, conv_backward_x_into, conv_forward,
};
use crate::step_profile::{Work, kernel};

/// Drop-in replacement for `burn::tensor::module::conv2d` (weight `[CO, CI, KH, KW]`,
/// input `[N, CI, H, W]`, NCHW).
///
/// Fast path (im2col + GEMM, explicit backward) for f32 on flex / ndarray / candle, bare or
/// wrapped in `Autodiff`; stock burn otherwise (dilation ≠ 1, groups ≠ 1, other dtypes or
/// backends). Gradients flow to `x`, `weight` and `bias` on an autodiff backend.
///
/// Call it from a module's forward exactly like the stock op:
/// `ops::conv2d(x, self.weight.val(), None, ConvOptions::new([s, s], [1, 1], [1, 1], 1))`.
pub fn conv2d<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: ConvOptions<2>,
) -> Tensor<B, 4> {
    let y = match fast_path(x, weight, &options, false) {
        Ok((y, _)) => y,
        Err((x, weight)) => return burn::tensor::module::conv2d(x, weight, bias, options),
    };
    match bias {
        None => y,
        Some(b) => {
            // Broadcast on a 2-D [N*CO, P] view: flex's 4-D broadcasting is ~20x slower.
            let [n, co, ho, wo] = y.dims();
            let b = b.reshape([1, co]).expand([n, co]).reshape([n * co, 1]);
            (y.reshape([n * co, ho * wo]) + b).reshape([n, co, ho, wo])
        }
    }
}

/// [`conv2d`] without a bias, also returning the output's per-channel batch statistics
/// where the fast path computed them (from plane moments taken while each sample's output
/// is in cache): hand them to the BatchNorm that follows (`batch_norm_train` and friends),
/// which then skips its own pass over the map. `None` on the stock fallback.
pub fn conv2d_with_stats<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    options: ConvOptions<2>,
) -> (Tensor<B, 4>, Option<BatchStats>) {
    match fast_path(x, weight, &options, true) {
        Ok(out) => out,
        Err((x, weight)) => (burn::tensor::module::conv2d(x, weight, None, options), None),
    }
}

/// The fast path where it applies (f32, dilation 1, groups 1, a known backend): the output
/// and, when `stats`, its batch statistics; the inputs back otherwise.
fn fast_path<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    options: &ConvOptions<2>,
    stats: bool,
) -> Result<(Tensor<B, 4>, Option<BatchStats>), Args<B>> {
    let fast = options.dilation == [1, 1]
        && options.groups == 1
        && x.dtype() == DType::F32
        && weight.dtype() == DType::F32;
    if !fast {
        return Err((x, weight));
    }
    dispatch(x, weight, options, stats)
}

/// Whether [`conv2d`] takes the im2col fast path for backend `B` (for benches and tests).
#[allow(deprecated)] // burn-candle is deprecated upstream but still a supported backend here
pub fn has_fast_conv<B: Backend>() -> bool {
    #[allow(unused_mut)]
    let mut fast = false;
    #[cfg(feature = "flex")]
    {
        fast |= super::host::is_backend::<B, burn::backend::Flex>();
    }
    #[cfg(feature = "ndarray")]
    {
        fast |= super::host::is_backend::<B, burn::backend::NdArray>();
    }
    #[cfg(feature = "candle")]
    {
        fast |= super::host::is_backend::<B, burn::backend::Candle>();
    }
    fast
}

type Args<B> = (Tensor<B, 4>, Tensor<B, 4>);

/// Routes a known backend to its fast path (with the output's batch statistics when
/// `stats`); returns the inputs untouched otherwise.
#[allow(deprecated)] // burn-candle
fn dispatch<B: Backend>(
    x: Tensor<B, 4>,
    w: Tensor<B, 4>,
    options: &ConvOptions<2>,
    stats: bool,
) -> Result<(Tensor<B, 4>, Option<BatchStats>), Args<B>> {
    let id = TypeId::of::<B>();
    macro_rules! route {
        ($inner:ty) => {
            if id == TypeId::of::<$inner>() {
                let (y, s) = conv2d_plain::<$inner>(cast(x), cast(w), options, stats);
                return Ok((cast(y), s));
            }
            if id == TypeId::of::<Autodiff<$inner>>() {
                let (y, s) = conv2d_autodiff::<$inner>(cast(x), cast(w), options, stats);
                return Ok((cast(y), s));
            }
        };
    }
    #[cfg(feature = "flex")]
    route!(burn::backend::Flex);
    #[cfg(feature = "ndarray")]
    route!(burn::backend::NdArray);
    #[cfg(feature = "candle")]
    route!(burn::backend::Candle);
    let _ = (id, options, stats);
    Err((x, w))
}

pub(super) fn geom(x_dims: [usize; 4], w_dims: [usize; 4], options: &ConvOptions<2>) -> ConvGeom {
    assert_eq!(
        x_dims[1], w_dims[1],
        "conv2d: input has {} channels, weight expects {}",
        x_dims[1], w_dims[1]
    );
    ConvGeom::new(
        x_dims,
        [w_dims[2], w_dims[3]],
        options.stride,
        options.padding,
    )
}

impl ConvGeom {
    /// The layer as the step profile names it: `NxCxHxW -> CO kKHxKW sS`.
    pub(super) fn label(&self, co: usize) -> String {
        let stride = if self.sh == self.sw {
            self.sh.to_string()
        } else {
            format!("{}x{}", self.sh, self.sw)
        };
        format!(
            "{}x{}x{}x{} -> {co} k{}x{} s{stride}",
            self.n, self.c, self.h, self.w, self.kh, self.kw
        )
    }

    /// FLOPs of one of the three products (forward, input or weight gradient): `2·N·CO·K·P`.
    pub(super) fn product_flops(&self, co: usize) -> f64 {
        2.0 * (self.n * co * self.k() * self.p()) as f64
    }
}

/// Forward on a non-autodiff backend.
fn conv2d_plain<B: Backend>(
    x: Tensor<B, 4>,
    w: Tensor<B, 4>,
    options: &ConvOptions<2>,
    stats: bool,
) -> (Tensor<B, 4>, Option<BatchStats>) {
    let g = geom(x.dims(), w.dims(), options);
    let co = w.dims()[0];
    let device = x.device();
    let (y, s) = kernel(
        "conv forward",
        || g.label(co),
        Work::flops(g.product_flops(co)),
        || {
            let (y, s) = conv_forward(
                &host::<B, 4>(x.into_primitive().tensor()),
                &host::<B, 4>(w.into_primitive().tensor()),
                co,
                &g,
                None,
                stats,
            );
            (device_tensor::<B, 4>(y, [g.n, co, g.ho, g.wo], &device), s)
        },
    );
    let s = s.map(|s| BatchStats::new(s, [g.n, co, g.ho, g.wo]));
    (Tensor::from_primitive(TensorPrimitive::Float(y)), s)
}

/// What the backward step keeps: the input and weight on the host (borrowed on flex) (the columns are
/// recomputed, never stored: they are 9x the input).
#[derive(Debug, Clone)]
pub(super) struct SavedConv {
    pub(super) x: Arc<HostBuf>,
    pub(super) w: Arc<HostBuf>,
    pub(super) w_dims: [usize; 4],
    pub(super) g: ConvGeom,
}

impl SavedConv {
    /// The weight gradient as `B`'s tensor (timed as the step profile's "conv weight grad");
    /// `norm` as in [`conv_backward_w`].
    pub(super) fn weight_grad<B: Backend>(
        &self,
        dy: &[f32],
        norm: Option<NormRelu>,
        device: &B::Device,
    ) -> FloatTensor<B> {
        let (g, co) = (&self.g, self.w_dims[0]);
        kernel(
            "conv weight grad",
            || g.label(co),
            Work::flops(g.product_flops(co)),
            || {
                let dw = conv_backward_w(&self.x, dy, co, g, norm);
                device_tensor::<B, 4>(dw, self.w_dims, device)
            },
        )
    }

    /// The input gradient on the host (timed as "conv input grad").
    pub(super) fn input_grad(&self, dy: &[f32]) -> Vec<f32> {
        let (g, co) = (&self.g, self.w_dims[0]);
        kernel(
            "conv input grad",
            || g.label(co),
            Work::flops(g.product_flops(co)),
            || conv_backward_x(dy, &self.w, co, g),
        )
    }

    /// The input gradient as `B`'s tensor, added into `earlier` where autodiff already held
    /// a gradient of the same input (a residual block's input, whose identity shortcut's
    /// backward ran first; see [`Conv2dIm2col`]).
    pub(super) fn input_grad_onto<B: Backend>(
        &self,
        dy: &[f32],
        earlier: Option<FloatTensor<B>>,
        device: &B::Device,
    ) -> FloatTensor<B> {
        let (g, co) = (&self.g, self.w_dims[0]);
        let dims = [g.n, g.c, g.h, g.w];
        match earlier {
            Some(earlier) => kernel(
                "conv input grad",
                || g.label(co),
                Work::flops(g.product_flops(co)),
                || {
                    let mut acc = host_mut::<B, 4>(earlier);
                    conv_backward_x_into(dy, &self.w, co, g, &mut acc);
                    acc.into_device::<B, 4>(dims, device)
                },
            ),
            None => device_tensor::<B, 4>(self.input_grad(dy), dims, device),
        }
    }
}

/// Backward step of the fast convolution.
#[derive(Debug)]
struct Conv2dIm2col;

impl<B: Backend> Backward<B, 2> for Conv2dIm2col {
    type State = SavedConv;

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_w] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let device = B::float_device(&grad);
        let s = ops.state;
        let probe = grad.clone();
        let dy = host::<B, 4>(grad);
        if let Some(node) = node_w {
            grads.register::<B>(node.id, s.weight_grad::<B>(&dy, None, &device));
        }
        if let Some(node) = node_x {
            // A gradient of x already there is taken out and dx added into it on the pool.
            // Left to burn, `Gradients::register` adds the two maps on this thread with
            // flex's sequential add while the pool waits (a residual block's input: 2.1 ms of
            // a batch-64 28 px step, perf). `remove` finds a gradient by its tensor's node:
            // a stand-in with x's node, whose values are never read.
            let stand_in: FloatTensor<Autodiff<B>> = FloatTensor::<Autodiff<B>> {
                primitive: probe,
                rc: Arc::new(node.id),
                node: node.clone(),
            };
            let earlier = grads.remove::<B>(&stand_in);
            drop(stand_in);
            let dx = s.input_grad_onto::<B>(&dy, earlier, &device);
            grads.register::<B>(node.id, dx);
        }
    }
}

/// Forward on `Autodiff<B>`: host kernels on the inner backend's data, with
/// [`Conv2dIm2col`] recorded as the backward step.
fn conv2d_autodiff<B: Backend>(
    x: Tensor<Autodiff<B>, 4>,
    w: Tensor<Autodiff<B>, 4>,
    options: &ConvOptions<2>,
    stats: bool,
) -> (Tensor<Autodiff<B>, 4>, Option<BatchStats>) {
    let w_dims = w.dims();
    let g = geom(x.dims(), w_dims, options);
    let co = w_dims[0];
    let device = x.device();
    let x = x.into_primitive().tensor();
    let w = w.into_primitive().tensor();
    let prep = Conv2dIm2col
        .prepare::<NoCheckpointing>([x.node.clone(), w.node.clone()])
        .compute_bound()
        .stateful();
    let (xh, wh, y, s) = kernel(
        "conv forward",
        || g.label(co),
        Work::flops(g.product_flops(co)),
        || {
            let xh = Arc::new(host::<B, 4>(x.primitive));
            let wh = Arc::new(host::<B, 4>(w.primitive));
            let (y, s) = conv_forward(&xh, &wh, co, &g, None, stats);
            let y = device_tensor::<B, 4>(y, [g.n, co, g.ho, g.wo], &device);
            (xh, wh, y, s)
        },
    );
    let s = s.map(|s| BatchStats::new(s, [g.n, co, g.ho, g.wo]));
    let out = match prep {
        OpsKind::Tracked(prep) => prep.finish(
            SavedConv {
                x: xh,
                w: wh,
                w_dims,
                g,
            },
            y,
        ),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    (Tensor::from_primitive(TensorPrimitive::Float(out)), s)
}
