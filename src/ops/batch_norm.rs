//! Training- and inference-mode BatchNorm, drop-in for burn's `BatchNorm` arithmetic.
//!
//! Two implementations behind one API:
//!
//! * **Fused host kernels** (f32 on flex / candle, bare or under `Autodiff`):
//!   statistics in one parallel pass per channel, normalisation in one pass, and an explicit
//!   backward (`dx`, `dγ`, `dβ` in two passes) instead of the ~15 elementwise ops autodiff
//!   would record.
//! * **2-D views of burn ops** (every other backend incl. ndarray, and affine with only
//!   one of γ/β):
//!   burn's `BatchNorm` broadcasts `[1, C, 1, 1]` tensors against `[N, C, H, W]`, and flex's
//!   4-D broadcasting is ~20x slower than the same arithmetic on a 2-D `[N*C, H*W]` view
//!   with a `[N*C, 1]` column (BURN_NOTES.md), so every elementwise op here sees 2-D
//!   operands: per-channel statistics are reduced in two steps (rows, then the `[N, C]`
//!   table) and expanded back to one value per row.
//!
//! Both use a two-pass variance (`mean((x − mean)²)`): no `E[x²] − mean²` cancellation for
//! inputs with a large mean.

use core::any::TypeId;
use std::sync::Arc;

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};

use super::host::{HostBuf, cast, device_tensor, host, host_mut};
use super::kernels::{
    BnGrad, DxInto, Epilogue, Stats, bn_add_relu_backward, bn_apply, bn_apply_in_place,
    bn_backward_in_place, bn_stats,
};
use crate::step_profile::{Work, kernel};

/// Per-channel batch statistics of a feature map, computed by the convolution that produced
/// it while each sample's output was in cache ([`super::conv2d_with_stats`]). Handed to the
/// BatchNorm that follows, they spare it its own pass over the map; they are used only for
/// a map of the shape they were computed on (otherwise the BatchNorm computes its own).
#[derive(Debug, Clone)]
pub struct BatchStats {
    mean: Vec<f32>,
    var: Vec<f32>,
    dims: [usize; 4],
}

impl BatchStats {
    pub(super) fn new((mean, var): Stats, dims: [usize; 4]) -> Self {
        Self { mean, var, dims }
    }

    /// Whether `given` describes a map of `dims` (so [`Self::or_compute`] reads nothing).
    pub(super) fn covers(given: &Option<Self>, dims: [usize; 4]) -> bool {
        given.as_ref().is_some_and(|s| s.dims == dims)
    }

    /// `(mean, var)` of `x` (`dims`): the given statistics where they describe a map of
    /// this shape, else computed.
    pub(super) fn or_compute(given: Option<Self>, x: &[f32], dims: [usize; 4]) -> Stats {
        match given {
            Some(s) if s.dims == dims => (s.mean, s.var),
            _ => {
                let [n, c, h, w] = dims;
                bn_stats(x, n, c, h * w)
            }
        }
    }
}

/// Expands a per-channel `[1, C]` row to one value per row of the `[N*C, HW]` view.
fn per_row<B: Backend>(c_row: Tensor<B, 2>, n: usize, c: usize) -> Tensor<B, 2> {
    c_row.expand([n, c]).reshape([n * c, 1])
}

/// `[1, C]` view of an optional per-channel vector.
fn row<B: Backend>(v: Tensor<B, 1>, c: usize) -> Tensor<B, 2> {
    v.reshape([1, c])
}

/// Training-mode BatchNorm of an `[N, C, H, W]` input with batch statistics.
///
/// Returns `(y, mean, var)`: `mean` and the biased variance `var` are the per-channel
/// batch statistics `[C]` (still attached to the graph; pass them to
/// [`update_running_stats`], which detaches them). `gamma`/`beta` are the optional affine
/// parameters `[C]` (`None` = affine off, like PyTorch's `affine=False`).
///
/// On the fused path `mean`/`var` are constants (no gradient flows through them); on the
/// composite path they are graph nodes. Either way they are meant for running statistics.
///
/// `stats`: the batch statistics of `x` from the convolution that produced it
/// ([`super::conv2d_with_stats`]), or `None` to compute them here.
///
/// From a module's forward (train mode):
/// `let (y, mean, var) = ops::batch_norm_train(x, Some(self.gamma.val()), Some(self.beta.val()), 1e-5, None);`
/// then `ops::update_running_stats(..)` and store the result in the module's running state.
pub fn batch_norm_train<B: Backend>(
    x: Tensor<B, 4>,
    gamma: Option<Tensor<B, 1>>,
    beta: Option<Tensor<B, 1>>,
    eps: f64,
    stats: Option<BatchStats>,
) -> (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>) {
    batch_norm_train_act(x, gamma, beta, eps, false, stats)
}

/// [`batch_norm_train`] followed by ReLU: `relu(BN(x))`, the pair that opens every residual
/// block. On the fused path both run in one pass over the map forward and one backward
/// (the ReLU mask is recomputed from the saved input, so nothing extra is stored); elsewhere
/// it is burn's `relu` after the composite BatchNorm.
pub fn batch_norm_relu_train<B: Backend>(
    x: Tensor<B, 4>,
    gamma: Option<Tensor<B, 1>>,
    beta: Option<Tensor<B, 1>>,
    eps: f64,
    stats: Option<BatchStats>,
) -> (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>) {
    batch_norm_train_act(x, gamma, beta, eps, true, stats)
}

/// `relu(BN(x) + residual)` in training mode with affine parameters: the end of a residual
/// block. On the fused path (f32 on flex / candle, bare or under `Autodiff`) it is one pass
/// over the map forward instead of three (BatchNorm, add, ReLU), and one backward that hands
/// the residual its gradient; the ReLU mask comes from the saved output, which the next layer
/// keeps anyway, so nothing extra is stored on flex. Elsewhere it is burn's add and `relu`
/// after [`batch_norm_train`]. Returns `(y, mean, var)` as [`batch_norm_train`] does;
/// `stats` as there.
pub fn batch_norm_add_relu_train<B: Backend>(
    x: Tensor<B, 4>,
    residual: Tensor<B, 4>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    eps: f64,
    stats: Option<BatchStats>,
) -> (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>) {
    let unfused = |x, residual, gamma, beta| {
        let (y, mean, var) = batch_norm_train(x, Some(gamma), Some(beta), eps, None);
        (burn::tensor::activation::relu(y + residual), mean, var)
    };
    let fused = [x.dtype(), residual.dtype(), gamma.dtype(), beta.dtype()]
        .iter()
        .all(|d| *d == DType::F32)
        && x.dims() == residual.dims();
    if !fused {
        return unfused(x, residual, gamma, beta);
    }
    let device = x.device();
    let c = x.dims()[1];
    match dispatch_add_relu(x, residual, gamma, beta, eps, stats) {
        Ok((y, mean, var)) => {
            let stat = |v: Vec<f32>| Tensor::<B, 1>::from_data(TensorData::new(v, [c]), &device);
            (y, stat(mean), stat(var))
        }
        Err((x, residual, gamma, beta)) => unfused(x, residual, gamma, beta),
    }
}

fn batch_norm_train_act<B: Backend>(
    x: Tensor<B, 4>,
    gamma: Option<Tensor<B, 1>>,
    beta: Option<Tensor<B, 1>>,
    eps: f64,
    relu: bool,
    stats: Option<BatchStats>,
) -> (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>) {
    let composite = |x, gamma, beta| {
        let (y, mean, var) = batch_norm_train_composite(x, gamma, beta, eps);
        let y = if relu {
            burn::tensor::activation::relu(y)
        } else {
            y
        };
        (y, mean, var)
    };
    let fused = x.dtype() == DType::F32
        && gamma.is_some() == beta.is_some()
        && gamma.as_ref().is_none_or(|g| g.dtype() == DType::F32)
        && beta.as_ref().is_none_or(|b| b.dtype() == DType::F32);
    if !fused {
        return composite(x, gamma, beta);
    }
    let device = x.device();
    let c = x.dims()[1];
    match dispatch(x, gamma.zip(beta), eps, relu, stats) {
        Ok((y, mean, var)) => {
            let stat = |v: Vec<f32>| Tensor::<B, 1>::from_data(TensorData::new(v, [c]), &device);
            (y, stat(mean), stat(var))
        }
        Err((x, affine)) => {
            let (g, b) = affine.unzip();
            composite(x, g, b)
        }
    }
}

/// Whether [`batch_norm_train`] takes the fused host-kernel path for backend `B`
/// (flex and candle; ndarray keeps the composite, see `dispatch`).
#[allow(deprecated)] // burn-candle is deprecated upstream but still a supported backend here
pub fn has_fused_batch_norm<B: Backend>() -> bool {
    #[allow(unused_mut)]
    let mut fused = false;
    #[cfg(feature = "flex")]
    {
        fused |= super::host::is_backend::<B, burn::backend::Flex>();
    }
    #[cfg(feature = "candle")]
    {
        fused |= super::host::is_backend::<B, burn::backend::Candle>();
    }
    fused
}

type Affine<B> = Option<(Tensor<B, 1>, Tensor<B, 1>)>;
type BnOut<B> = (Tensor<B, 4>, Vec<f32>, Vec<f32>);

/// Routes a known CPU backend to the fused kernels; returns the inputs otherwise.
#[allow(deprecated)] // burn-candle
fn dispatch<B: Backend>(
    x: Tensor<B, 4>,
    affine: Affine<B>,
    eps: f64,
    relu: bool,
    stats: Option<BatchStats>,
) -> Result<BnOut<B>, (Tensor<B, 4>, Affine<B>)> {
    let id = TypeId::of::<B>();
    let dims = x.dims();
    let op = if relu {
        "batchnorm+relu forward"
    } else {
        "batchnorm forward"
    };
    // The fused forward `$f` on backend `$b`, timed, returned as `B`'s tensors.
    macro_rules! call {
        ($f:ident, $b:ty) => {{
            let (y, m, v) = kernel(
                op,
                || bn_label(dims),
                // Read x, write y, and a statistics pass unless the convolution gave them.
                map_traffic(dims, 2 + usize::from(!BatchStats::covers(&stats, dims))),
                || {
                    let affine = affine.map(|(g, b)| (cast(g), cast(b)));
                    $f::<$b>(cast(x), affine, eps, relu, stats)
                },
            );
            return Ok((cast(y), m, v));
        }};
    }
    macro_rules! route {
        ($inner:ty) => {
            if id == TypeId::of::<$inner>() {
                call!(bn_plain, $inner)
            }
            if id == TypeId::of::<Autodiff<$inner>>() {
                call!(bn_autodiff, $inner)
            }
        };
    }
    // Not ndarray: moving an 8 MB activation to and from the host costs it ~30-60 ms
    // (measured), more than the fused kernels save; its composite is 54 ms fwd+bwd at
    // 64x32x32x32 against 87 ms fused.
    #[cfg(feature = "flex")]
    route!(burn::backend::Flex);
    #[cfg(feature = "candle")]
    route!(burn::backend::Candle);
    let _ = (id, eps, relu, op, dims, stats);
    Err((x, affine))
}

type AddReluInputs<B> = (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>);

/// [`dispatch`] for BatchNorm + add + ReLU.
#[allow(deprecated)] // burn-candle
fn dispatch_add_relu<B: Backend>(
    x: Tensor<B, 4>,
    residual: Tensor<B, 4>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    eps: f64,
    stats: Option<BatchStats>,
) -> Result<BnOut<B>, AddReluInputs<B>> {
    let id = TypeId::of::<B>();
    let dims = x.dims();
    const OP: &str = "batchnorm+add+relu forward";
    // The fused forward `$f` on backend `$b`, timed, returned as `B`'s tensors.
    macro_rules! call {
        ($f:ident, $b:ty) => {{
            let (y, m, v) = kernel(
                OP,
                || bn_label(dims),
                // Read x and the residual, write y; statistics as in `dispatch`.
                map_traffic(dims, 3 + usize::from(!BatchStats::covers(&stats, dims))),
                || $f::<$b>(cast(x), cast(residual), cast(gamma), cast(beta), eps, stats),
            );
            return Ok((cast(y), m, v));
        }};
    }
    macro_rules! route {
        ($inner:ty) => {
            if id == TypeId::of::<$inner>() {
                call!(bn_add_relu_plain, $inner)
            }
            if id == TypeId::of::<Autodiff<$inner>>() {
                call!(bn_add_relu_autodiff, $inner)
            }
        };
    }
    // Not ndarray, for the reason given in `dispatch`.
    #[cfg(feature = "flex")]
    route!(burn::backend::Flex);
    #[cfg(feature = "candle")]
    route!(burn::backend::Candle);
    let _ = (id, eps, dims, stats);
    Err((x, residual, gamma, beta))
}

/// BatchNorm + add + ReLU's per-channel constants.
struct AddReluConstants {
    mean: Vec<f32>,
    var: Vec<f32>,
    inv_std: Vec<f32>,
    /// `y = max(x·scale + shift + r, 0)`.
    scale: Vec<f32>,
    shift: Vec<f32>,
}

impl AddReluConstants {
    fn new(
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        eps: f64,
        dims: [usize; 4],
        stats: Option<BatchStats>,
    ) -> Self {
        let (mean, var) = BatchStats::or_compute(stats, x, dims);
        let inv_std = inv_std(&var, eps);
        let (scale, shift) = scale_shift(&mean, &inv_std, Some((gamma, beta)));
        Self {
            mean,
            var,
            inv_std,
            scale,
            shift,
        }
    }
}

/// Fused BatchNorm + add + ReLU on a non-autodiff backend.
fn bn_add_relu_plain<B: Backend>(
    x: Tensor<B, 4>,
    residual: Tensor<B, 4>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    eps: f64,
    stats: Option<BatchStats>,
) -> BnOut<B> {
    let dims = x.dims();
    let device = x.device();
    let [xh, rh] = [x, residual].map(|t| host::<B, 4>(t.into_primitive().tensor()));
    let [gh, bh] = [gamma, beta].map(|t| host::<B, 1>(t.into_primitive().tensor()));
    let k = AddReluConstants::new(&xh, &gh, &bh, eps, dims, stats);
    let then = Epilogue::AddRelu(&rh);
    let y = normalised::<B>(xh, &k.scale, &k.shift, dims, then, &device);
    (
        Tensor::from_primitive(TensorPrimitive::Float(y)),
        k.mean,
        k.var,
    )
}

/// Fused BatchNorm + add + ReLU on `Autodiff<B>`, recording the explicit backward.
fn bn_add_relu_autodiff<B: Backend>(
    x: Tensor<Autodiff<B>, 4>,
    residual: Tensor<Autodiff<B>, 4>,
    gamma: Tensor<Autodiff<B>, 1>,
    beta: Tensor<Autodiff<B>, 1>,
    eps: f64,
    stats: Option<BatchStats>,
) -> BnOut<Autodiff<B>> {
    let dims = x.dims();
    let device = x.device();
    let [x, residual] = [x, residual].map(|t| t.into_primitive().tensor());
    let [gamma, beta] = [gamma, beta].map(|t| t.into_primitive().tensor());
    let xh = host::<B, 4>(x.primitive);
    let rh = host::<B, 4>(residual.primitive);
    let gh = host::<B, 1>(gamma.primitive);
    let bh = host::<B, 1>(beta.primitive);
    let [_, c, h, w] = dims;
    let AddReluConstants {
        mean,
        var,
        inv_std: inv,
        scale,
        shift,
    } = AddReluConstants::new(&xh, &gh, &bh, eps, dims, stats);
    let then = Epilogue::AddRelu(&rh);
    let out = match BnAddReluBackward
        .prepare::<NoCheckpointing>([x.node, residual.node, gamma.node, beta.node])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let y = bn_apply(&xh, &scale, &shift, c, h * w, then);
            let y = device_tensor::<B, 4>(y, dims, &device);
            let state = SavedBnAddRelu {
                bn: SavedBn {
                    x: Arc::new(xh),
                    mean: Arc::new(mean.clone()),
                    inv_std: Arc::new(inv),
                    gamma: Some(Arc::new(gh)),
                    relu: None,
                    dims,
                },
                // On flex a second reference to the output's storage, not a copy.
                out: Arc::new(host::<B, 4>(y.clone())),
            };
            prep.finish(state, y)
        }
        // Untracked (the target network), nothing keeps x: y may go over it.
        OpsKind::UnTracked(prep) => {
            prep.finish(normalised::<B>(xh, &scale, &shift, dims, then, &device))
        }
    };
    (
        Tensor::from_primitive(TensorPrimitive::Float(out)),
        mean,
        var,
    )
}

/// What the backward of BatchNorm + add + ReLU keeps: the BatchNorm's state and the output.
#[derive(Debug, Clone)]
struct SavedBnAddRelu {
    bn: SavedBn,
    out: Arc<HostBuf>,
}

/// Backward of BatchNorm + add + ReLU (parents: x, residual, γ, β).
#[derive(Debug)]
struct BnAddReluBackward;

impl<B: Backend> Backward<B, 4> for BnAddReluBackward {
    type State = SavedBnAddRelu;

    fn backward(self, ops: Ops<SavedBnAddRelu, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let Ops {
            parents,
            node,
            state,
        } = ops;
        let dy = grads.consume::<B>(&node);
        let SavedBnAddRelu { mut bn, out } = state;
        let dims = bn.dims;
        let out = kernel(
            "batchnorm+add+relu backward",
            || bn_label(dims),
            // The ReLU gate with the sums (read y, dy and x, write g), dx (read x and g,
            // write dx).
            map_traffic(dims, 7),
            || {
                let device = B::float_device(&dy);
                let c = dims[1];
                // The gradient past the ReLU is the residual's, and BatchNorm's upstream one.
                let mut g = host_mut::<B, 4>(dy);
                // BatchNorm's input is needed by nothing after this: dx goes over it where
                // nothing else holds it.
                let x = std::mem::replace(&mut bn.x, Arc::new(HostBuf::Owned(Vec::new())));
                let x = Arc::try_unwrap(x).map(HostBuf::into_mut);
                let (dx, dg, db) = match x {
                    Ok(Ok(mut x)) => {
                        let (_, dg, db) =
                            bn_add_relu_backward(DxInto::X(&mut x), &mut g, &out, bn.bn_grad());
                        (x.into_device::<B, 4>(dims, &device), dg, db)
                    }
                    Ok(Err(x)) => fresh_dx::<B>(&x, &mut g, &out, &bn, &device),
                    Err(x) => fresh_dx::<B>(&x, &mut g, &out, &bn, &device),
                };
                [
                    dx,
                    g.into_device::<B, 4>(dims, &device),
                    device_tensor::<B, 1>(dg, [c], &device),
                    device_tensor::<B, 1>(db, [c], &device),
                ]
            },
        );
        for (parent, g) in parents.into_iter().zip(out) {
            if let Some(node) = parent {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

/// [`BnAddReluBackward`] with `dx` in a new map, `x` being held elsewhere.
fn fresh_dx<B: Backend>(
    x: &[f32],
    g: &mut [f32],
    out: &[f32],
    bn: &SavedBn,
    device: &B::Device,
) -> (burn::tensor::ops::FloatTensor<B>, Vec<f32>, Vec<f32>) {
    let (dx, dg, db) = bn_add_relu_backward(DxInto::New(x), g, out, bn.bn_grad());
    (device_tensor::<B, 4>(dx, bn.dims, device), dg, db)
}

/// The bytes `maps` whole passes over an f32 map of `dims` read or write (the step
/// profile's traffic count for BatchNorm: each pass reads or writes the map once).
pub(super) fn map_traffic(dims: [usize; 4], maps: usize) -> Work {
    Work::bytes((maps * dims.iter().product::<usize>() * 4) as f64)
}

/// The layer as the step profile names it: `NxCxHxW`.
pub(super) fn bn_label([n, c, h, w]: [usize; 4]) -> String {
    format!("{n}x{c}x{h}x{w}")
}

/// Per-channel `(scale, shift)` of the normalisation: `y = x·scale + shift`.
pub(super) fn scale_shift(
    mean: &[f32],
    inv_std: &[f32],
    affine: Option<(&[f32], &[f32])>,
) -> (Vec<f32>, Vec<f32>) {
    let scale: Vec<f32> = match affine {
        Some((g, _)) => inv_std.iter().zip(g).map(|(i, g)| i * g).collect(),
        None => inv_std.to_vec(),
    };
    let shift = mean
        .iter()
        .zip(&scale)
        .enumerate()
        .map(|(c, (m, s))| affine.map_or(0.0, |(_, b)| b[c]) - m * s)
        .collect();
    (scale, shift)
}

pub(super) fn inv_std(var: &[f32], eps: f64) -> Vec<f32> {
    var.iter()
        .map(|v| (1.0 / (*v as f64 + eps).sqrt()) as f32)
        .collect()
}

/// Fused forward on a non-autodiff backend.
fn bn_plain<B: Backend>(
    x: Tensor<B, 4>,
    affine: Affine<B>,
    eps: f64,
    relu: bool,
    stats: Option<BatchStats>,
) -> BnOut<B> {
    let [n, c, h, w] = x.dims();
    let device = x.device();
    let xh = host::<B, 4>(x.into_primitive().tensor());
    let (mean, var) = BatchStats::or_compute(stats, &xh, [n, c, h, w]);
    let inv = inv_std(&var, eps);
    let affine = affine.map(|(g, b)| {
        (
            host::<B, 1>(g.into_primitive().tensor()),
            host::<B, 1>(b.into_primitive().tensor()),
        )
    });
    let (scale, shift) = scale_shift(&mean, &inv, affine.as_ref().map(|(g, b)| (&g[..], &b[..])));
    let then = Epilogue::relu_if(relu);
    let y = normalised::<B>(xh, &scale, &shift, [n, c, h, w], then, &device);
    (Tensor::from_primitive(TensorPrimitive::Float(y)), mean, var)
}

/// `x` normalised by [`bn_apply`] without autodiff: written over `x` where nothing else
/// holds it (no input is kept for a backward here), into a new map otherwise.
fn normalised<B: Backend>(
    x: HostBuf,
    scale: &[f32],
    shift: &[f32],
    dims: [usize; 4],
    then: Epilogue,
    device: &B::Device,
) -> burn::tensor::ops::FloatTensor<B> {
    let [_, c, h, w] = dims;
    match x.into_mut() {
        Ok(mut x) => {
            bn_apply_in_place(&mut x, scale, shift, c, h * w, then);
            x.into_device::<B, 4>(dims, device)
        }
        Err(x) => device_tensor::<B, 4>(bn_apply(&x, scale, shift, c, h * w, then), dims, device),
    }
}

/// Per-channel `(scale, shift)` of a forward pass.
pub(super) type ScaleShift = (Arc<Vec<f32>>, Arc<Vec<f32>>);

/// What the fused backward keeps: the input on the host and the per-channel constants.
#[derive(Debug, Clone)]
pub(super) struct SavedBn {
    pub(super) x: Arc<HostBuf>,
    pub(super) mean: Arc<Vec<f32>>,
    pub(super) inv_std: Arc<Vec<f32>>,
    pub(super) gamma: Option<Arc<HostBuf>>,
    /// For BatchNorm + ReLU: the forward's per-channel `(scale, shift)`, to recompute the
    /// ReLU mask.
    pub(super) relu: Option<ScaleShift>,
    pub(super) dims: [usize; 4],
}

impl SavedBn {
    /// `(dx, dgamma, dbeta)` as primitives of `B`.
    fn grads<B: Backend>(
        &self,
        dy: burn::tensor::ops::FloatTensor<B>,
    ) -> [burn::tensor::ops::FloatTensor<B>; 3] {
        let op = if self.relu.is_some() {
            "batchnorm+relu backward"
        } else {
            "batchnorm backward"
        };
        // The sums (read x and dy), dx over dy (read x and dy, write dx).
        let traffic = map_traffic(self.dims, 5);
        kernel(
            op,
            || bn_label(self.dims),
            traffic,
            || self.grads_now::<B>(dy),
        )
    }

    /// [`Self::grads`], untimed: `dx` is written over `dy`.
    fn grads_now<B: Backend>(
        &self,
        dy: burn::tensor::ops::FloatTensor<B>,
    ) -> [burn::tensor::ops::FloatTensor<B>; 3] {
        let device = B::float_device(&dy);
        let c = self.dims[1];
        let mut g = host_mut::<B, 4>(dy);
        let (dg, db) = self.grads_in_place(&mut g);
        [
            g.into_device::<B, 4>(self.dims, &device),
            device_tensor::<B, 1>(dg, [c], &device),
            device_tensor::<B, 1>(db, [c], &device),
        ]
    }

    /// The constants of the backward.
    fn bn_grad(&self) -> BnGrad<'_> {
        let [_, c, h, w] = self.dims;
        BnGrad {
            mean: &self.mean,
            inv_std: &self.inv_std,
            gamma: self.gamma.as_deref().map(|g| &g[..]),
            relu: self
                .relu
                .as_ref()
                .map(|(a, b)| (a.as_slice(), b.as_slice())),
            c,
            hw: h * w,
        }
    }

    /// `(dgamma, dbeta)` on the host with `dx` written over `dy`.
    pub(super) fn grads_in_place(&self, dy: &mut [f32]) -> (Vec<f32>, Vec<f32>) {
        bn_backward_in_place(&self.x, dy, self.bn_grad())
    }
}

/// Backward of the fused BatchNorm with affine parameters (parents: x, γ, β).
#[derive(Debug)]
struct BnAffineBackward;

impl<B: Backend> Backward<B, 3> for BnAffineBackward {
    type State = SavedBn;

    fn backward(self, ops: Ops<SavedBn, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<B>(&ops.node);
        let out = ops.state.grads::<B>(dy);
        for (parent, g) in ops.parents.into_iter().zip(out) {
            if let Some(node) = parent {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

/// Backward of the fused BatchNorm without affine parameters (parent: x).
#[derive(Debug)]
struct BnPlainBackward;

impl<B: Backend> Backward<B, 1> for BnPlainBackward {
    type State = SavedBn;

    fn backward(self, ops: Ops<SavedBn, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<B>(&ops.node);
        let [dx, _, _] = ops.state.grads::<B>(dy);
        if let [Some(node)] = ops.parents {
            grads.register::<B>(node.id, dx);
        }
    }
}

/// Fused forward on `Autodiff<B>`, recording the explicit backward.
fn bn_autodiff<B: Backend>(
    x: Tensor<Autodiff<B>, 4>,
    affine: Affine<Autodiff<B>>,
    eps: f64,
    relu: bool,
    stats: Option<BatchStats>,
) -> BnOut<Autodiff<B>> {
    let dims = x.dims();
    let [_, c, h, w] = dims;
    let device = x.device();
    let x = x.into_primitive().tensor();
    let xh = host::<B, 4>(x.primitive);
    let (mean, var) = BatchStats::or_compute(stats, &xh, dims);
    let inv = inv_std(&var, eps);
    let then = Epilogue::relu_if(relu);
    let saved =
        |gamma: Option<Arc<HostBuf>>, xh: HostBuf, scale: Vec<f32>, shift: Vec<f32>| SavedBn {
            x: Arc::new(xh),
            mean: Arc::new(mean.clone()),
            inv_std: Arc::new(inv.clone()),
            gamma,
            relu: relu.then(|| (Arc::new(scale), Arc::new(shift))),
            dims,
        };
    let out = match affine {
        Some((g, b)) => {
            let (g, b) = (g.into_primitive().tensor(), b.into_primitive().tensor());
            let gh = host::<B, 1>(g.primitive);
            let bh = host::<B, 1>(b.primitive);
            let (scale, shift) = scale_shift(&mean, &inv, Some((&gh, &bh)));
            match BnAffineBackward
                .prepare::<NoCheckpointing>([x.node, g.node, b.node])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => {
                    let y = bn_apply(&xh, &scale, &shift, c, h * w, then);
                    let y = device_tensor::<B, 4>(y, dims, &device);
                    prep.finish(saved(Some(Arc::new(gh)), xh, scale, shift), y)
                }
                // Untracked (the target network), nothing keeps x: y may go over it.
                OpsKind::UnTracked(prep) => {
                    prep.finish(normalised::<B>(xh, &scale, &shift, dims, then, &device))
                }
            }
        }
        None => {
            let (scale, shift) = scale_shift(&mean, &inv, None);
            match BnPlainBackward
                .prepare::<NoCheckpointing>([x.node])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => {
                    let y = bn_apply(&xh, &scale, &shift, c, h * w, then);
                    let y = device_tensor::<B, 4>(y, dims, &device);
                    prep.finish(saved(None, xh, scale, shift), y)
                }
                OpsKind::UnTracked(prep) => {
                    prep.finish(normalised::<B>(xh, &scale, &shift, dims, then, &device))
                }
            }
        }
    };
    (
        Tensor::from_primitive(TensorPrimitive::Float(out)),
        mean,
        var,
    )
}

/// [`batch_norm_train`] as 2-D-view burn ops only (any backend, autodiff through burn's
/// own op gradients). [`batch_norm_train`] uses it wherever the fused kernels do not apply;
/// public for comparison and for backends where the host round trip would hurt (GPU).
pub fn batch_norm_train_composite<B: Backend>(
    x: Tensor<B, 4>,
    gamma: Option<Tensor<B, 1>>,
    beta: Option<Tensor<B, 1>>,
    eps: f64,
) -> (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>) {
    let [n, c, h, w] = x.dims();
    let hw = h * w;
    let count = (n * hw) as f64;
    let x2 = x.reshape([n * c, hw]);

    // Two-step reduction: per row ([N*C, 1]), then over the batch ([1, C]).
    let mean_c = x2
        .clone()
        .sum_dim(1)
        .reshape([n, c])
        .sum_dim(0)
        .div_scalar(count);
    let xc = x2 - per_row(mean_c.clone(), n, c);
    let var_c = (xc.clone() * xc.clone())
        .sum_dim(1)
        .reshape([n, c])
        .sum_dim(0)
        .div_scalar(count);

    let inv_std = var_c.clone().add_scalar(eps).sqrt().recip();
    let scale = match gamma {
        Some(g) => inv_std * row(g, c),
        None => inv_std,
    };
    let mut y = xc * per_row(scale, n, c);
    if let Some(b) = beta {
        y = y + per_row(row(b, c), n, c);
    }
    (
        y.reshape([n, c, h, w]),
        mean_c.reshape([c]),
        var_c.reshape([c]),
    )
}

/// Training-mode BatchNorm of an `[N, C]` input (projector / predictor heads).
///
/// Same contract as [`batch_norm_train`]; the statistics are over the batch axis.
pub fn batch_norm_train_2d<B: Backend>(
    x: Tensor<B, 2>,
    gamma: Option<Tensor<B, 1>>,
    beta: Option<Tensor<B, 1>>,
    eps: f64,
) -> (Tensor<B, 2>, Tensor<B, 1>, Tensor<B, 1>) {
    let [n, c] = x.dims();
    if has_fused_batch_norm::<B>() {
        let (y, m, v) = batch_norm_train(x.reshape([n, c, 1, 1]), gamma, beta, eps, None);
        return (y.reshape([n, c]), m, v);
    }
    let mean_c = x.clone().mean_dim(0);
    let xc = x - mean_c.clone();
    let var_c = (xc.clone() * xc.clone()).mean_dim(0);
    let inv_std = var_c.clone().add_scalar(eps).sqrt().recip();
    let scale = match gamma {
        Some(g) => inv_std * row(g, c),
        None => inv_std,
    };
    let mut y = xc * scale;
    if let Some(b) = beta {
        y = y + row(b, c);
    }
    let _ = n;
    (y, mean_c.reshape([c]), var_c.reshape([c]))
}

/// Per-channel `(scale, shift)` `[1, C]` of inference-mode BatchNorm.
fn eval_affine<B: Backend>(
    running_mean: Tensor<B, 1>,
    running_var: Tensor<B, 1>,
    gamma: Option<Tensor<B, 1>>,
    beta: Option<Tensor<B, 1>>,
    eps: f64,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let c = running_mean.dims()[0];
    let inv_std = row(running_var, c).add_scalar(eps).sqrt().recip();
    let scale = match gamma {
        Some(g) => inv_std * row(g, c),
        None => inv_std,
    };
    let mut shift = row(running_mean, c).neg() * scale.clone();
    if let Some(b) = beta {
        shift = shift + row(b, c);
    }
    (scale, shift)
}

/// Inference-mode BatchNorm of an `[N, C, H, W]` input with running statistics:
/// `y = (x − running_mean) / sqrt(running_var + eps) · gamma + beta`, as one fused
/// scale-and-shift on the 2-D view.
pub fn batch_norm_eval<B: Backend>(
    x: Tensor<B, 4>,
    running_mean: Tensor<B, 1>,
    running_var: Tensor<B, 1>,
    gamma: Option<Tensor<B, 1>>,
    beta: Option<Tensor<B, 1>>,
    eps: f64,
) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let (scale, shift) = eval_affine(running_mean, running_var, gamma, beta, eps);
    let y = x.reshape([n * c, h * w]) * per_row(scale, n, c) + per_row(shift, n, c);
    y.reshape([n, c, h, w])
}

/// Inference-mode BatchNorm of an `[N, C]` input with running statistics.
pub fn batch_norm_eval_2d<B: Backend>(
    x: Tensor<B, 2>,
    running_mean: Tensor<B, 1>,
    running_var: Tensor<B, 1>,
    gamma: Option<Tensor<B, 1>>,
    beta: Option<Tensor<B, 1>>,
    eps: f64,
) -> Tensor<B, 2> {
    let (scale, shift) = eval_affine(running_mean, running_var, gamma, beta, eps);
    x * scale + shift
}

/// Running-statistics update, PyTorch convention:
/// `running = (1 − momentum) · running + momentum · batch`, with the variance made
/// unbiased (`var · count / (count − 1)`, `count` = N·H·W values per channel) before
/// averaging when `unbiased` is true. The batch statistics are detached. Returns
/// `(running_mean, running_var)`.
///
/// burn's own `BatchNorm` averages the *biased* variance: pass `unbiased = false` to
/// reproduce it exactly, `true` to match PyTorch.
pub fn update_running_stats<B: Backend>(
    running_mean: Tensor<B, 1>,
    running_var: Tensor<B, 1>,
    batch_mean: Tensor<B, 1>,
    batch_var: Tensor<B, 1>,
    count: usize,
    momentum: f64,
    unbiased: bool,
) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let var = batch_var.detach();
    let var = if unbiased && count > 1 {
        var.mul_scalar(count as f64 / (count - 1) as f64)
    } else {
        var
    };
    let mean = running_mean.mul_scalar(1.0 - momentum) + batch_mean.detach().mul_scalar(momentum);
    let var = running_var.mul_scalar(1.0 - momentum) + var.mul_scalar(momentum);
    (mean, var)
}
