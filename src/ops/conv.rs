//! 2-D convolution as im2col + the backend's matmul, with an explicit backward.
//!
//! Why: burn 0.21 computes a convolution's input gradient with `conv_transpose2d` and its
//! weight gradient with a `conv2d` whose "kernel" is the whole output gradient. On flex the
//! former runs sequentially over the batch and the latter is a degenerate GEMM (M = KH*KW,
//! K = N*HO*WO), so a training step spends most of its time there. Here all three products
//! are ordinary batched GEMMs on the backend's matmul:
//!
//! * forward      `Y[n]  = W[CO,K] · cols[n][K,P]`
//! * input grad   `dcols[n] = Wᵀ · dY[n]`, then `col2im`
//! * weight grad  `dW = Σ_n dY[n] · cols[n]ᵀ` (cols recomputed, not stored: 9x the input)
//!
//! The public [`conv2d`] is generic over `B: Backend`. It recognises the CPU backends
//! compiled into this crate (flex, ndarray, candle, each bare or under `Autodiff` with the
//! default checkpointing) by `TypeId` and routes them to the fast path; any other backend,
//! dtype or option (dilation, groups) falls back to burn's stock `conv2d`, so the function
//! is always a drop-in replacement.

use core::any::{Any, TypeId};

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, FloatTensor};
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};

use super::kernels::{ConvGeom, col2im, im2col};

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
    let fast = options.dilation == [1, 1]
        && options.groups == 1
        && x.dtype() == DType::F32
        && weight.dtype() == DType::F32;
    let y = if fast {
        match dispatch(x, weight, &options) {
            Ok(y) => y,
            Err((x, weight)) => return burn::tensor::module::conv2d(x, weight, bias, options),
        }
    } else {
        return burn::tensor::module::conv2d(x, weight, bias, options);
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

/// Whether [`conv2d`] takes the im2col fast path for backend `B` (for benches and tests).
#[allow(deprecated)] // burn-candle is deprecated upstream but still a supported backend here
pub fn has_fast_conv<B: Backend>() -> bool {
    let id = TypeId::of::<B>();
    macro_rules! check {
        ($inner:ty) => {
            if id == TypeId::of::<$inner>() || id == TypeId::of::<Autodiff<$inner>>() {
                return true;
            }
        };
    }
    #[cfg(feature = "flex")]
    check!(burn::backend::Flex);
    #[cfg(feature = "ndarray")]
    check!(burn::backend::NdArray);
    #[cfg(feature = "candle")]
    check!(burn::backend::Candle);
    let _ = id;
    false
}

/// Moves a value to another type that is known (by `TypeId`) to be the same type.
fn cast<A: 'static, T: 'static>(a: A) -> T {
    let boxed: Box<dyn Any> = Box::new(a);
    *boxed
        .downcast::<T>()
        .expect("type checked by TypeId before the cast")
}

type Args<B> = (Tensor<B, 4>, Tensor<B, 4>);

/// Routes a known backend to its fast path; returns the inputs untouched otherwise.
#[allow(deprecated)] // burn-candle
fn dispatch<B: Backend>(
    x: Tensor<B, 4>,
    w: Tensor<B, 4>,
    options: &ConvOptions<2>,
) -> Result<Tensor<B, 4>, Args<B>> {
    let id = TypeId::of::<B>();
    macro_rules! route {
        ($inner:ty) => {
            if id == TypeId::of::<$inner>() {
                let y = conv2d_plain::<$inner>(cast(x), cast(w), options);
                return Ok(cast(y));
            }
            if id == TypeId::of::<Autodiff<$inner>>() {
                let y = conv2d_autodiff::<$inner>(cast(x), cast(w), options);
                return Ok(cast(y));
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
    Err((x, w))
}

fn geom(x_dims: [usize; 4], w_dims: [usize; 4], options: &ConvOptions<2>) -> ConvGeom {
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

/// Reads a float tensor into host memory as f32.
fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .into_vec::<f32>()
        .expect("conv2d fast path is f32-only")
}

/// A 1x1, stride-1, unpadded convolution needs no gather: the input already is the
/// column matrix.
fn is_pointwise(g: &ConvGeom) -> bool {
    g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0
}

/// Column matrix `[N, K, P]` of `x` on the device of `x`.
fn columns<B: Backend>(x: Tensor<B, 4>, g: &ConvGeom) -> Tensor<B, 3> {
    if is_pointwise(g) {
        return x.reshape([g.n, g.c, g.h * g.w]);
    }
    let device = x.device();
    let cols = im2col(&host(x), g);
    Tensor::from_data(TensorData::new(cols, [g.n, g.k(), g.p()]), &device)
}

/// Forward on a non-autodiff backend: `Y[n] = W · cols[n]`.
fn conv2d_plain<B: Backend>(
    x: Tensor<B, 4>,
    w: Tensor<B, 4>,
    options: &ConvOptions<2>,
) -> Tensor<B, 4> {
    let g = geom(x.dims(), w.dims(), options);
    let co = w.dims()[0];
    let cols = columns(x, &g);
    let wm = w.reshape([1, co, g.k()]);
    wm.matmul(cols).reshape([g.n, co, g.ho, g.wo])
}

/// Input gradient: `dcols[n] = Wᵀ · dY[n]`, scattered back with col2im.
fn conv2d_x_grad<B: Backend>(w: Tensor<B, 4>, dy: Tensor<B, 4>, g: &ConvGeom) -> Tensor<B, 4> {
    let co = w.dims()[0];
    let wt = w.reshape([1, co, g.k()]).swap_dims(1, 2);
    let dcols = wt.matmul(dy.reshape([g.n, co, g.p()]));
    if is_pointwise(g) {
        return dcols.reshape([g.n, g.c, g.h, g.w]);
    }
    let device = dcols.device();
    let dx = col2im(&host(dcols), g);
    Tensor::from_data(TensorData::new(dx, [g.n, g.c, g.h, g.w]), &device)
}

/// Weight gradient: `dW = Σ_n dY[n] · cols[n]ᵀ`, with the columns recomputed.
fn conv2d_w_grad<B: Backend>(
    x: Tensor<B, 4>,
    dy: Tensor<B, 4>,
    g: &ConvGeom,
    w_dims: [usize; 4],
) -> Tensor<B, 4> {
    let co = w_dims[0];
    let cols = columns(x, g);
    // One GEMM with inner dimension N*P instead of N small ones plus a reduction:
    // [CO, N*P] · [N*P, K]. Both operands are permuted views; flex's gemm reads them
    // strided, other backends copy once.
    let dy2 = dy
        .reshape([g.n, co, g.p()])
        .swap_dims(0, 1)
        .reshape([co, g.n * g.p()]);
    let cols2 = cols.swap_dims(1, 2).reshape([g.n * g.p(), g.k()]);
    dy2.matmul(cols2).reshape(w_dims)
}

/// Backward step of the fast convolution (state: input, weight, geometry).
#[derive(Debug)]
struct Conv2dIm2col;

impl<B: Backend> Backward<B, 2> for Conv2dIm2col {
    type State = (FloatTensor<B>, FloatTensor<B>, ConvGeom);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_w] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, w, g) = ops.state;
        let wrap = |p: FloatTensor<B>| Tensor::<B, 4>::from_primitive(TensorPrimitive::Float(p));
        let dy = wrap(grad);
        let w = wrap(w);
        let w_dims = w.dims();
        if let Some(node) = node_w {
            let dw = conv2d_w_grad(wrap(x), dy.clone(), &g, w_dims);
            grads.register::<B>(node.id, dw.into_primitive().tensor());
        }
        if let Some(node) = node_x {
            let dx = conv2d_x_grad(w, dy, &g);
            grads.register::<B>(node.id, dx.into_primitive().tensor());
        }
    }
}

/// Forward on `Autodiff<B>`: runs [`conv2d_plain`] on the inner backend and records
/// [`Conv2dIm2col`] as the backward step.
fn conv2d_autodiff<B: Backend>(
    x: Tensor<Autodiff<B>, 4>,
    w: Tensor<Autodiff<B>, 4>,
    options: &ConvOptions<2>,
) -> Tensor<Autodiff<B>, 4> {
    let g = geom(x.dims(), w.dims(), options);
    let x = x.into_primitive().tensor();
    let w = w.into_primitive().tensor();
    let inner = |p: FloatTensor<B>| Tensor::<B, 4>::from_primitive(TensorPrimitive::Float(p));
    let forward = |xp: FloatTensor<B>, wp: FloatTensor<B>| {
        conv2d_plain(inner(xp), inner(wp), options)
            .into_primitive()
            .tensor()
    };
    let out = match Conv2dIm2col
        .prepare::<NoCheckpointing>([x.node.clone(), w.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let y = forward(x.primitive.clone(), w.primitive.clone());
            prep.finish((x.primitive, w.primitive, g), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive, w.primitive)),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}
