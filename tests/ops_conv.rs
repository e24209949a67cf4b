//! `edgessl::ops::conv2d` against burn's stock `conv2d`: values and gradients (input,
//! weight, bias), on every compiled CPU backend, bare and under `Autodiff`.

use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Distribution, Tensor};
use edgessl::ops;

/// Max |a − b| relative to max |b| (1 when `b` is tiny).
fn rel_err<B: Backend, const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let scale = b.clone().abs().max().into_scalar().to_f32_lossy().max(1.0);
    (a - b).abs().max().into_scalar().to_f32_lossy() / scale
}

trait ToF32 {
    fn to_f32_lossy(self) -> f32;
}
impl<E: burn::tensor::ElementConversion> ToF32 for E {
    fn to_f32_lossy(self) -> f32 {
        self.elem::<f32>()
    }
}

/// (n, ci, h, w, co, kh, kw, stride, padding)
type Case = (
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    [usize; 2],
    [usize; 2],
);

const CASES: &[Case] = &[
    (2, 3, 8, 8, 4, 3, 3, [1, 1], [1, 1]), // stem-like
    (2, 4, 9, 7, 5, 3, 3, [2, 2], [1, 1]), // stride 2, odd non-square input
    (1, 1, 6, 5, 3, 3, 3, [1, 1], [1, 1]), // batch 1, C = 1
    (3, 4, 8, 8, 6, 1, 1, [2, 2], [0, 0]), // 1x1 stride-2 shortcut
    (2, 5, 5, 6, 3, 1, 1, [1, 1], [0, 0]), // pointwise (no gather)
    (2, 3, 7, 9, 4, 3, 2, [1, 2], [1, 0]), // non-square kernel, mixed stride/padding
    (1, 2, 5, 5, 2, 3, 3, [1, 1], [0, 0]), // no padding
    (2, 2, 4, 4, 3, 3, 3, [2, 2], [2, 2]), // padding > kernel/2
    (2, 3, 6, 7, 4, 5, 3, [1, 1], [2, 1]), // same-size stride 1, non-square: flipped dx path
    // The implicit GEMM on x86-64 CPUs with AVX2 (forward: CO ≥ 16 and K ≥ 9, K ≥ 64 for
    // 1x1 kernels; weight gradient: K ≥ 27; input gradient: C ≥ 16); the others above
    // take im2col + gemm.
    (2, 1, 9, 8, 16, 3, 3, [1, 1], [1, 1]), // 1-channel stem: implicit forward only, K = 9
    (2, 3, 8, 9, 24, 3, 3, [1, 1], [1, 1]), // 3-channel stem: implicit forward and dw, K = 27
    (2, 8, 8, 8, 20, 3, 3, [1, 1], [1, 1]), // CO off the 16-lane block, P = 64 off 6
    (3, 9, 9, 7, 16, 3, 3, [2, 2], [1, 1]), // stride 2 through the phase planes
    (1, 16, 5, 5, 16, 3, 3, [1, 1], [1, 1]), // input gradient: one phase, K = CO·9
    (2, 16, 7, 7, 32, 3, 3, [2, 2], [1, 1]), // input gradient: four phases, odd size
    // Winograd F(2x2, 3x3) on those CPUs (3x3 stride 1 "same", C and CO ≥ 16, maps ≥ 12x12,
    // or even ≥ 8x8 with ≥ 128 channels): forward and input gradient; odd height for the
    // bottom tiles' dropped row; an 8x8 map of 128 channels.
    (2, 16, 15, 14, 24, 3, 3, [1, 1], [1, 1]),
    (1, 128, 8, 8, 128, 3, 3, [1, 1], [1, 1]),
];

const TOL: f32 = 1e-4;

fn check_backend<B: Backend>(name: &str) {
    let dev = B::Device::default();
    B::seed(&dev, 7);
    assert!(ops::has_fast_conv::<B>(), "{name}: fast path not taken");
    assert!(
        ops::has_fast_conv::<Autodiff<B>>(),
        "{name}: fast path not taken"
    );
    for &(n, ci, h, w, co, kh, kw, stride, padding) in CASES {
        // Candle's stock conv (the reference) rejects per-axis stride/padding.
        if name == "candle" && (stride[0] != stride[1] || padding[0] != padding[1]) {
            continue;
        }
        let opts = ConvOptions::new(stride, padding, [1, 1], 1);
        let ctx = format!("{name} n{n} ci{ci} {h}x{w} co{co} k{kh}x{kw} s{stride:?} p{padding:?}");
        let x = Tensor::<Autodiff<B>, 4>::random([n, ci, h, w], Distribution::Normal(0., 1.), &dev);
        let wt =
            Tensor::<Autodiff<B>, 4>::random([co, ci, kh, kw], Distribution::Normal(0., 1.), &dev);
        let b = Tensor::<Autodiff<B>, 1>::random([co], Distribution::Normal(0., 1.), &dev);

        // Inner backend: forward only.
        let y_ref = burn::tensor::module::conv2d(
            x.clone().inner(),
            wt.clone().inner(),
            Some(b.clone().inner()),
            opts.clone(),
        );
        let y_fast = ops::conv2d(
            x.clone().inner(),
            wt.clone().inner(),
            Some(b.clone().inner()),
            opts.clone(),
        );
        assert!(rel_err(y_fast, y_ref.clone()) < TOL, "{ctx}: inner forward");

        // Autodiff: forward and all three gradients, with a random output gradient.
        let r = Tensor::<Autodiff<B>, 4>::random(y_ref.dims(), Distribution::Normal(0., 1.), &dev);
        let run = |fast: bool| {
            let (x, wt, b) = (
                x.clone().require_grad(),
                wt.clone().require_grad(),
                b.clone().require_grad(),
            );
            let y = if fast {
                ops::conv2d(x.clone(), wt.clone(), Some(b.clone()), opts.clone())
            } else {
                burn::tensor::module::conv2d(x.clone(), wt.clone(), Some(b.clone()), opts.clone())
            };
            let g = (y.clone() * r.clone()).sum().backward();
            (
                y.inner(),
                x.grad(&g).unwrap(),
                wt.grad(&g).unwrap(),
                b.grad(&g).unwrap(),
            )
        };
        let (y0, dx0, dw0, db0) = run(false);
        let (y1, dx1, dw1, db1) = run(true);
        assert!(rel_err(y1, y0) < TOL, "{ctx}: forward");
        assert!(rel_err(dx1, dx0) < TOL, "{ctx}: input grad");
        assert!(rel_err(dw1, dw0) < TOL, "{ctx}: weight grad");
        assert!(rel_err(db1, db0) < TOL, "{ctx}: bias grad");
    }
}

/// The first convolution's input needs no gradient: only the weight gets one.
fn check_no_input_grad<B: Backend>() {
    let dev = B::Device::default();
    let x = Tensor::<Autodiff<B>, 4>::random([2, 3, 6, 6], Distribution::Normal(0., 1.), &dev);
    let w = Tensor::<Autodiff<B>, 4>::random([4, 3, 3, 3], Distribution::Normal(0., 1.), &dev)
        .require_grad();
    let opts = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    let g0 = burn::tensor::module::conv2d(x.clone(), w.clone(), None, opts.clone())
        .sum()
        .backward();
    let g1 = ops::conv2d(x.clone(), w.clone(), None, opts)
        .sum()
        .backward();
    assert!(x.grad(&g1).is_none());
    assert!(rel_err(w.grad(&g1).unwrap(), w.grad(&g0).unwrap()) < TOL);
}

/// Chained convolutions: gradients flow through the fast op into an earlier one.
fn check_chain<B: Backend>() {
    let dev = B::Device::default();
    let x = Tensor::<Autodiff<B>, 4>::random([2, 2, 7, 7], Distribution::Normal(0., 1.), &dev);
    let w1 = Tensor::<Autodiff<B>, 4>::random([3, 2, 3, 3], Distribution::Normal(0., 1.), &dev);
    let w2 = Tensor::<Autodiff<B>, 4>::random([4, 3, 3, 3], Distribution::Normal(0., 1.), &dev);
    let s1 = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    let s2 = ConvOptions::new([2, 2], [1, 1], [1, 1], 1);
    let run = |fast: bool| {
        let (w1, w2) = (w1.clone().require_grad(), w2.clone().require_grad());
        let conv = |x, w, o: &ConvOptions<2>| {
            if fast {
                ops::conv2d(x, w, None, o.clone())
            } else {
                burn::tensor::module::conv2d(x, w, None, o.clone())
            }
        };
        let h = burn::tensor::activation::relu(conv(x.clone(), w1.clone(), &s1));
        let y = conv(h, w2.clone(), &s2);
        let g = (y.clone() * y).sum().backward();
        (w1.grad(&g).unwrap(), w2.grad(&g).unwrap())
    };
    let (a1, a2) = run(false);
    let (b1, b2) = run(true);
    assert!(rel_err(b1, a1) < TOL);
    assert!(rel_err(b2, a2) < TOL);
}

/// `conv2d_with_stats`: the same output as `conv2d`, and (on the fast path) per-channel
/// batch statistics of it equal to those BatchNorm computes itself; on the implicit GEMM
/// (3x3 on 16 channels, stride 1 and 2) and im2col paths (3 channels, 1x1 stride 2).
fn check_stats<B: Backend>() {
    let dev = B::Device::default();
    let cases = [
        ([2, 16, 6, 7], 16, 3, 1),
        ([3, 16, 7, 7], 32, 3, 2),
        ([2, 3, 5, 5], 4, 3, 1),
        ([2, 8, 6, 6], 16, 1, 2),
    ];
    for (shape, co, k, s) in cases {
        let x = Tensor::<B, 4>::random(shape, Distribution::Normal(1., 2.), &dev);
        let w = Tensor::<B, 4>::random([co, shape[1], k, k], Distribution::Normal(0.2, 1.), &dev);
        let o = ConvOptions::new([s, s], [k / 2, k / 2], [1, 1], 1);
        let (y, stats) = ops::conv2d_with_stats(x.clone(), w.clone(), o.clone());
        let y_ref = ops::conv2d(x, w, None, o);
        assert!(rel_err(y.clone(), y_ref) < TOL, "{shape:?}: output");
        let stats = stats.expect("the fast path computes the statistics");
        let (_, mean, var) = ops::batch_norm_train(y.clone(), None, None, 1e-5, Some(stats));
        let (_, mean_ref, var_ref) = ops::batch_norm_train(y, None, None, 1e-5, None);
        assert!(rel_err(mean, mean_ref) < TOL, "{shape:?}: mean");
        assert!(rel_err(var, var_ref) < TOL, "{shape:?}: variance");
    }
}

/// Options the fast path does not handle fall back to the stock op (same results).
#[cfg(feature = "flex")]
fn check_fallback<B: Backend>() {
    let dev = B::Device::default();
    let x = Tensor::<B, 4>::random([1, 4, 7, 7], Distribution::Normal(0., 1.), &dev);
    let w = Tensor::<B, 4>::random([4, 2, 3, 3], Distribution::Normal(0., 1.), &dev);
    let opts = ConvOptions::new([1, 1], [2, 2], [2, 2], 2);
    let a = burn::tensor::module::conv2d(x.clone(), w.clone(), None, opts.clone());
    let b = ops::conv2d(x, w, None, opts);
    assert!(rel_err(b, a) < TOL);
}

#[cfg(feature = "flex")]
#[test]
fn conv2d_flex() {
    check_backend::<burn::backend::Flex>("flex");
    check_no_input_grad::<burn::backend::Flex>();
    check_chain::<burn::backend::Flex>();
    check_stats::<burn::backend::Flex>();
    check_fallback::<burn::backend::Flex>();
}

#[cfg(feature = "ndarray")]
#[test]
fn conv2d_ndarray() {
    check_backend::<burn::backend::NdArray>("ndarray");
    check_no_input_grad::<burn::backend::NdArray>();
    check_chain::<burn::backend::NdArray>();
    check_stats::<burn::backend::NdArray>();
}

#[cfg(feature = "candle")]
#[allow(deprecated)] // burn-candle is deprecated upstream but still a supported backend here
#[test]
fn conv2d_candle() {
    check_backend::<burn::backend::Candle>("candle");
    check_no_input_grad::<burn::backend::Candle>();
    check_chain::<burn::backend::Candle>();
    check_stats::<burn::backend::Candle>();
}
