//! A downsampling block's two convolutions of one input, its 3x3 strided convolution and
//! the 1x1 strided projection on its shortcut, computed together.
//!
//! Why: the 1x1 stride-2 projection reads exactly the pixels the 3x3 one's tap (1, 1)
//! reads, so on the implicit GEMM it can run on the 3x3 convolution's input planes (no
//! fill or column matrix of its own), its input gradient joins one stride phase's GEMM of
//! the 3x3 one's (the sum of the two gradients taken in registers: no second map, no add),
//! and its weight gradient shares the planes refilled for the 3x3 one's. Alone, that
//! projection ran at 30-40 % of the sgemm roof (K = 32 or 64 is a short GEMM).
//!
//! burn's autodiff gives an op one output, so the pair is recorded as two: the main
//! convolution (parents `x`, `w`, `w_s`) and the shortcut's output (parent: the main
//! output). The shortcut's step runs first (it is deeper in the graph), hands its output
//! gradient to the main step through shared state and registers nothing; the main step
//! then computes every gradient of both.

use core::any::TypeId;
use std::sync::{Arc, Mutex};

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, FloatTensor};
use burn::tensor::{DType, FloatDType, Tensor, TensorPrimitive};

use super::batch_norm::BatchStats;
use super::conv::{SavedConv, conv2d_with_stats, geom};
use super::host::{HostBuf, cast, device_tensor, host};
use super::implicit_gemm::{
    Shortcut, conv_backward_w_with_shortcut, conv_backward_x_with_shortcut,
    conv_forward_with_shortcut, shares_planes,
};
use super::kernels::{ConvGeom, channel_moments};
use crate::step_profile::{Work, kernel};

/// An output with its batch statistics where the fast path computed them.
type Stated<B> = (Tensor<B, 4>, Option<BatchStats>);

/// `(conv2d(x, weight), conv2d(x, shortcut_weight))` without biases, each with its batch
/// statistics, as [`super::conv2d_with_stats`] gives them: a downsampling block's main
/// convolution and its 1x1 projection shortcut (`shortcut_weight` `[CO_S, C, 1, 1]`, no
/// padding, the main convolution's stride and output size).
///
/// Computed together on shared input planes (see the module docs) where the fast path
/// applies to both (f32 on flex / ndarray / candle, bare or under `Autodiff`, on a CPU with
/// the implicit GEMM, and a 1x1 kernel whose one tap is one of the main kernel's); two
/// separate [`super::conv2d_with_stats`] calls otherwise, so it is always a drop-in
/// replacement. Gradients flow to `x` and both weights.
pub fn conv2d_with_shortcut_stats<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    options: ConvOptions<2>,
    shortcut_weight: Tensor<B, 4>,
    shortcut_options: ConvOptions<2>,
) -> (Stated<B>, Stated<B>) {
    let plain = |o: &ConvOptions<2>| o.dilation == [1, 1] && o.groups == 1;
    let shared = plain(&options)
        && plain(&shortcut_options)
        && [&x, &weight, &shortcut_weight]
            .iter()
            .all(|t| t.dtype() == DType::F32)
        && weight.dims()[1] == x.dims()[1]
        && shortcut_weight.dims()[1] == x.dims()[1]
        && shares_planes(
            weight.dims()[0],
            &geom(x.dims(), weight.dims(), &options),
            &geom(x.dims(), shortcut_weight.dims(), &shortcut_options),
        );
    let (x, weight, shortcut_weight) = if shared {
        match dispatch(x, weight, shortcut_weight, &options) {
            Ok(out) => return out,
            Err(args) => args,
        }
    } else {
        (x, weight, shortcut_weight)
    };
    separate(x, weight, options, shortcut_weight, shortcut_options)
}

/// The two convolutions one after the other.
fn separate<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    options: ConvOptions<2>,
    shortcut_weight: Tensor<B, 4>,
    shortcut_options: ConvOptions<2>,
) -> (Stated<B>, Stated<B>) {
    let short = conv2d_with_stats(x.clone(), shortcut_weight, shortcut_options);
    (conv2d_with_stats(x, weight, options), short)
}

type Args<B> = (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>);

/// Routes a known backend to the shared-planes path; the inputs back otherwise.
#[allow(deprecated)] // burn-candle
fn dispatch<B: Backend>(
    x: Tensor<B, 4>,
    w: Tensor<B, 4>,
    ws: Tensor<B, 4>,
    options: &ConvOptions<2>,
) -> Result<(Stated<B>, Stated<B>), Args<B>> {
    let id = TypeId::of::<B>();
    macro_rules! route {
        ($inner:ty) => {
            if id == TypeId::of::<$inner>() {
                let ((y, s), (ys, ss)) = pair_plain::<$inner>(cast(x), cast(w), cast(ws), options);
                return Ok(((cast(y), s), (cast(ys), ss)));
            }
            if id == TypeId::of::<Autodiff<$inner>>() {
                let ((y, s), (ys, ss)) =
                    pair_autodiff::<$inner>(cast(x), cast(w), cast(ws), options);
                return Ok(((cast(y), s), (cast(ys), ss)));
            }
        };
    }
    #[cfg(feature = "flex")]
    route!(burn::backend::Flex);
    #[cfg(feature = "ndarray")]
    route!(burn::backend::NdArray);
    #[cfg(feature = "candle")]
    route!(burn::backend::Candle);
    let _ = (id, options);
    Err((x, w, ws))
}

/// The step profile's name for the pair: the main layer and the shortcut's channels.
fn label(g: &ConvGeom, co: usize, co_s: usize) -> String {
    format!("{} + {co_s} k1x1", g.label(co))
}

/// Both products' FLOPs (the shortcut's `K` is `C`).
fn pair_flops(g: &ConvGeom, co: usize, co_s: usize) -> f64 {
    g.product_flops(co) + 2.0 * (g.n * co_s * g.c * g.p()) as f64
}

/// Both forwards on host data: `(y, ys)` as `B`'s tensors with their statistics.
fn forward<B: Backend>(
    x: &[f32],
    w: &[f32],
    ws: &[f32],
    co: usize,
    co_s: usize,
    g: &ConvGeom,
    device: &B::Device,
) -> ((FloatTensor<B>, BatchStats), (FloatTensor<B>, BatchStats)) {
    kernel(
        "conv forward",
        || label(g, co, co_s),
        Work::flops(pair_flops(g, co, co_s)),
        || {
            let short = Shortcut { w: ws, co: co_s };
            let [(y, t), (ys, ts)] =
                conv_forward_with_shortcut(x, w, co, g, None, true, Some(short));
            let out = |y, t: Vec<(f32, f32)>, co| {
                let dims = [g.n, co, g.ho, g.wo];
                let stats = BatchStats::new(channel_moments(&t, co, g.p()), dims);
                (device_tensor::<B, 4>(y, dims, device), stats)
            };
            (out(y, t, co), out(ys, ts, co_s))
        },
    )
}

fn float<B: Backend>(t: FloatTensor<B>) -> Tensor<B, 4> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

/// Forward on a non-autodiff backend.
fn pair_plain<B: Backend>(
    x: Tensor<B, 4>,
    w: Tensor<B, 4>,
    ws: Tensor<B, 4>,
    options: &ConvOptions<2>,
) -> (Stated<B>, Stated<B>) {
    let g = geom(x.dims(), w.dims(), options);
    let (co, co_s) = (w.dims()[0], ws.dims()[0]);
    let device = x.device();
    let ((y, s), (ys, ss)) = forward::<B>(
        &host::<B, 4>(x.into_primitive().tensor()),
        &host::<B, 4>(w.into_primitive().tensor()),
        &host::<B, 4>(ws.into_primitive().tensor()),
        co,
        co_s,
        &g,
        &device,
    );
    ((float(y), Some(s)), (float(ys), Some(ss)))
}

/// What the shortcut's step hands to the main one.
#[derive(Debug)]
struct Handoff<B: Backend> {
    /// The shortcut's output gradient, once its step has run.
    dys: Option<FloatTensor<B>>,
    /// A stand-in for the main output (its node, a one-float primitive) to look its
    /// gradient up with `Gradients::remove`, which unlike `consume` allows it to be absent.
    main: Option<FloatTensor<Autodiff<B>>>,
}

type SharedHandoff<B> = Arc<Mutex<Handoff<B>>>;

/// What the main step keeps: the main convolution's input and weight, the shortcut's
/// weight, and where the shortcut's output gradient arrives.
#[derive(Debug, Clone)]
struct SavedPair<B: Backend> {
    conv: SavedConv,
    ws: Arc<HostBuf>,
    ws_dims: [usize; 4],
    handoff: SharedHandoff<B>,
}

/// Backward step of the main convolution: every gradient of both convolutions.
#[derive(Debug)]
struct ConvWithShortcut;

impl<B: Backend> Backward<B, 3> for ConvWithShortcut {
    type State = SavedPair<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_w, node_ws] = ops.parents;
        let s = ops.state;
        let (dys, main) = {
            let mut h = s.handoff.lock().expect("shortcut gradient handoff");
            (h.dys.take(), h.main.take())
        };
        // The main output's gradient. Without the shortcut's this step was reached through
        // the main output's consumers, so it is there; with it, it may be absent (the main
        // output unused).
        let grad = match (&dys, main) {
            (Some(_), Some(main)) => grads.remove::<B>(&main),
            _ => Some(grads.consume::<B>(&ops.node)),
        };
        let Some(device) = grad.as_ref().or(dys.as_ref()).map(B::float_device) else {
            return;
        };
        let (g, co, co_s) = (&s.conv.g, s.conv.w_dims[0], s.ws_dims[0]);
        // Without it the main weight gets no gradient (as with separate convolutions) and
        // the kernels read zeros in its place.
        let node_w = node_w.filter(|_| grad.is_some());
        let dy = grad.map_or_else(|| HostBuf::Owned(vec![0.0; g.n * co * g.p()]), host::<B, 4>);
        let dy: &[f32] = &dy;
        let dys = dys.map(host::<B, 4>);
        let dys = dys.as_deref();
        if node_w.is_some() || node_ws.is_some() {
            let (dw, dws) = kernel(
                "conv weight grad",
                || label(g, co, co_s),
                Work::flops(pair_flops(g, co, co_s)),
                || {
                    conv_backward_w_with_shortcut(
                        &s.conv.x,
                        dy,
                        co,
                        g,
                        None,
                        dys.map(|d| (co_s, d)),
                    )
                },
            );
            if let Some(node) = node_w {
                grads.register::<B>(node.id, device_tensor::<B, 4>(dw, s.conv.w_dims, &device));
            }
            if let Some(node) = node_ws.filter(|_| dys.is_some()) {
                grads.register::<B>(node.id, device_tensor::<B, 4>(dws, s.ws_dims, &device));
            }
        }
        if let Some(node) = node_x {
            let short = dys.map(|d| (Shortcut { w: &s.ws, co: co_s }, d));
            let dx = kernel(
                "conv input grad",
                || label(g, co, co_s),
                Work::flops(pair_flops(g, co, co_s)),
                || conv_backward_x_with_shortcut(dy, &s.conv.w, co, g, short),
            );
            grads.register::<B>(
                node.id,
                device_tensor::<B, 4>(dx, [g.n, g.c, g.h, g.w], &device),
            );
        }
    }
}

/// Backward step of the shortcut's output: hands its gradient to [`ConvWithShortcut`].
#[derive(Debug)]
struct ShortcutOutput;

impl<B: Backend> Backward<B, 1> for ShortcutOutput {
    type State = SharedHandoff<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let dys = grads.consume::<B>(&ops.node);
        ops.state.lock().expect("shortcut gradient handoff").dys = Some(dys);
    }
}

/// Forward on `Autodiff<B>`: both outputs from the host kernels, recorded as
/// [`ConvWithShortcut`] and [`ShortcutOutput`].
fn pair_autodiff<B: Backend>(
    x: Tensor<Autodiff<B>, 4>,
    w: Tensor<Autodiff<B>, 4>,
    ws: Tensor<Autodiff<B>, 4>,
    options: &ConvOptions<2>,
) -> (Stated<Autodiff<B>>, Stated<Autodiff<B>>) {
    let (w_dims, ws_dims) = (w.dims(), ws.dims());
    let g = geom(x.dims(), w_dims, options);
    let (co, co_s) = (w_dims[0], ws_dims[0]);
    let device = x.device();
    let [x, w, ws] = [x, w, ws].map(|t| t.into_primitive().tensor());
    let prep = ConvWithShortcut
        .prepare::<NoCheckpointing>([x.node.clone(), w.node.clone(), ws.node.clone()])
        .compute_bound()
        .stateful();
    let [xh, wh, wsh] = [x.primitive, w.primitive, ws.primitive].map(|t| Arc::new(host::<B, 4>(t)));
    let ((y, s), (ys, ss)) = forward::<B>(&xh, &wh, &wsh, co, co_s, &g, &device);
    let handoff: SharedHandoff<B> = Arc::new(Mutex::new(Handoff {
        dys: None,
        main: None,
    }));
    let y = match prep {
        OpsKind::Tracked(prep) => prep.finish(
            SavedPair {
                conv: SavedConv {
                    x: xh,
                    w: wh,
                    w_dims,
                    g,
                },
                ws: wsh,
                ws_dims,
                handoff: handoff.clone(),
            },
            y,
        ),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    let ys = match ShortcutOutput
        .prepare::<NoCheckpointing>([y.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let mut main = y.clone();
            main.primitive = B::float_zeros([1].into(), &device, FloatDType::F32);
            // Its own count: holding the output's would keep the graph alive.
            main.rc = Arc::new(main.node.id);
            handoff.lock().expect("shortcut gradient handoff").main = Some(main);
            prep.finish(handoff, ys)
        }
        OpsKind::UnTracked(prep) => prep.finish(ys),
    };
    ((float(y), Some(s)), (float(ys), Some(ss)))
}
