//! `edgessl::ops::conv2d_with_shortcut_stats` (a downsampling block's convolution and its
//! 1x1 projection shortcut, computed together on shared input planes) against two stock
//! `conv2d`s: both outputs and their statistics, and the gradients of the input and of
//! both weights, with both outputs used, only one of them, and inside a chain; on every
//! compiled CPU backend, bare and under `Autodiff`.

use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Distribution, ElementConversion, Tensor};
use edgessl::ops;

const TOL: f32 = 1e-4;

/// Max |a − b| relative to max |b| (1 when `b` is tiny).
fn rel_err<B: Backend, const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let scale = b.clone().abs().max().into_scalar().elem::<f32>();
    let diff = (a - b).abs().max().into_scalar().elem::<f32>();
    diff / scale.max(1.0)
}

/// `([n, c, h, w], co, kernel, stride, co_s)`: main `kernel`x`kernel` with padding
/// kernel / 2, shortcut 1x1 without padding, both at `stride`.
type Case = ([usize; 4], usize, usize, usize, usize);

const CASES: &[Case] = &[
    // Shared planes on CPUs with AVX2 + FMA: the trunks' downsampling (3x3 stride 2),
    // odd sizes, channel counts off the 16-lane block, a stride-1 projection, and a 5x5
    // kernel whose centre tap lies in phase (0, 0).
    ([2, 16, 9, 9], 32, 3, 2, 24),
    ([3, 16, 8, 7], 16, 3, 2, 40),
    ([2, 20, 6, 6], 24, 3, 1, 17),
    ([2, 16, 9, 8], 16, 5, 2, 16),
    // Outside the shared path (3 input channels; 8 output channels): two convolutions.
    ([2, 3, 8, 8], 4, 3, 2, 5),
    ([2, 16, 8, 8], 8, 3, 2, 8),
];

fn options(kernel: usize, stride: usize) -> ConvOptions<2> {
    let pad = kernel / 2;
    ConvOptions::new([stride, stride], [pad, pad], [1, 1], 1)
}

fn random<B: Backend>(dims: [usize; 4], dev: &B::Device) -> Tensor<B, 4> {
    Tensor::random(dims, Distribution::Normal(0., 1.), dev)
}

/// Which outputs the loss reads.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Uses {
    Both,
    Main,
    Shortcut,
}

fn check_backend<B: Backend>(name: &str) {
    let dev = B::Device::default();
    B::seed(&dev, 11);
    for &(xd, co, k, s, co_s) in CASES {
        // Candle's stock conv backward (the reference) rejects a different output padding
        // per axis, which a non-square input at stride 2 can need.
        if name == "candle" && xd[2] != xd[3] {
            continue;
        }
        let ctx = format!("{name} {xd:?} co {co} k{k} s{s} shortcut {co_s}");
        let (o, os) = (options(k, s), options(1, s));
        let x = random::<Autodiff<B>>(xd, &dev);
        let w = random::<Autodiff<B>>([co, xd[1], k, k], &dev);
        let ws = random::<Autodiff<B>>([co_s, xd[1], 1, 1], &dev);

        // Inner backend: both outputs, and statistics equal to BatchNorm's own.
        let ((y, stats), (ys, stats_s)) = ops::conv2d_with_shortcut_stats(
            x.clone().inner(),
            w.clone().inner(),
            o.clone(),
            ws.clone().inner(),
            os.clone(),
        );
        let y_ref =
            burn::tensor::module::conv2d(x.clone().inner(), w.clone().inner(), None, o.clone());
        let ys_ref =
            burn::tensor::module::conv2d(x.clone().inner(), ws.clone().inner(), None, os.clone());
        assert!(rel_err(y.clone(), y_ref.clone()) < TOL, "{ctx}: forward");
        assert!(
            rel_err(ys.clone(), ys_ref.clone()) < TOL,
            "{ctx}: shortcut forward"
        );
        for (map, given, what) in [(y, stats, "main"), (ys, stats_s, "shortcut")] {
            let given = given.expect("the fast path computes the statistics");
            let (_, mean, var) = ops::batch_norm_train(map.clone(), None, None, 1e-5, Some(given));
            let (_, mean_ref, var_ref) = ops::batch_norm_train(map, None, None, 1e-5, None);
            assert!(rel_err(mean, mean_ref) < TOL, "{ctx}: {what} mean");
            assert!(rel_err(var, var_ref) < TOL, "{ctx}: {what} variance");
        }

        // Autodiff: outputs and gradients against two stock convolutions.
        let r = random::<Autodiff<B>>(y_ref.dims(), &dev);
        let rs = random::<Autodiff<B>>(ys_ref.dims(), &dev);
        let run = |fast: bool, uses: Uses| {
            let (x, w, ws) = (
                x.clone().require_grad(),
                w.clone().require_grad(),
                ws.clone().require_grad(),
            );
            let (y, ys) = if fast {
                let ((y, _), (ys, _)) = ops::conv2d_with_shortcut_stats(
                    x.clone(),
                    w.clone(),
                    o.clone(),
                    ws.clone(),
                    os.clone(),
                );
                (y, ys)
            } else {
                (
                    burn::tensor::module::conv2d(x.clone(), w.clone(), None, o.clone()),
                    burn::tensor::module::conv2d(x.clone(), ws.clone(), None, os.clone()),
                )
            };
            let loss = match uses {
                Uses::Both => (y.clone() * r.clone()).sum() + (ys.clone() * rs.clone()).sum(),
                Uses::Main => (y.clone() * r.clone()).sum(),
                Uses::Shortcut => (ys.clone() * rs.clone()).sum(),
            };
            let g = loss.backward();
            (y.inner(), ys.inner(), x.grad(&g), w.grad(&g), ws.grad(&g))
        };
        for uses in [Uses::Both, Uses::Main, Uses::Shortcut] {
            let ctx = format!("{ctx}, {uses:?} used");
            let (y0, ys0, dx0, dw0, dws0) = run(false, uses);
            let (y1, ys1, dx1, dw1, dws1) = run(true, uses);
            assert!(rel_err(y1, y0) < TOL, "{ctx}: forward");
            assert!(rel_err(ys1, ys0) < TOL, "{ctx}: shortcut forward");
            let dx = (
                dx1.expect("input gradient"),
                dx0.expect("stock input gradient"),
            );
            assert!(rel_err(dx.0, dx.1) < TOL, "{ctx}: input grad");
            for (got, want, what) in [(dw1, dw0, "weight"), (dws1, dws0, "shortcut weight")] {
                match (got, want) {
                    (Some(got), Some(want)) => {
                        assert!(rel_err(got, want) < TOL, "{ctx}: {what} grad")
                    }
                    (got, want) => {
                        assert_eq!(got.is_some(), want.is_some(), "{ctx}: {what} grad present")
                    }
                }
            }
        }
    }
}

/// Gradients flow through the pair into an earlier convolution, and a block's end (BN,
/// shortcut add, ReLU) on top gives the stock block's gradients.
fn check_block_chain<B: Backend>() {
    let dev = B::Device::default();
    B::seed(&dev, 5);
    let x = random::<Autodiff<B>>([2, 3, 10, 10], &dev);
    let stem = random::<Autodiff<B>>([16, 3, 3, 3], &dev);
    let w = random::<Autodiff<B>>([32, 16, 3, 3], &dev);
    let ws = random::<Autodiff<B>>([32, 16, 1, 1], &dev);
    let run = |fast: bool| {
        let (stem, w, ws) = (
            stem.clone().require_grad(),
            w.clone().require_grad(),
            ws.clone().require_grad(),
        );
        let h = burn::tensor::activation::relu(ops::conv2d(
            x.clone(),
            stem.clone(),
            None,
            options(3, 1),
        ));
        let ((y, st), (ys, sts)) = if fast {
            ops::conv2d_with_shortcut_stats(h, w.clone(), options(3, 2), ws.clone(), options(1, 2))
        } else {
            (
                (
                    burn::tensor::module::conv2d(h.clone(), w.clone(), None, options(3, 2)),
                    None,
                ),
                (
                    burn::tensor::module::conv2d(h, ws.clone(), None, options(1, 2)),
                    None,
                ),
            )
        };
        let (short, _, _) = ops::batch_norm_train(ys, None, None, 1e-5, sts);
        let (gamma, beta) = (Tensor::ones([32], &dev), Tensor::zeros([32], &dev));
        let (out, _, _) = ops::batch_norm_add_relu_train(y, short, gamma, beta, 1e-5, st);
        let g = (out.clone() * out).sum().backward();
        (
            stem.grad(&g).unwrap(),
            w.grad(&g).unwrap(),
            ws.grad(&g).unwrap(),
        )
    };
    let (a0, a1, a2) = run(false);
    let (b0, b1, b2) = run(true);
    assert!(rel_err(b0, a0) < TOL, "stem grad through the pair");
    assert!(rel_err(b1, a1) < TOL, "main weight grad");
    assert!(rel_err(b2, a2) < TOL, "shortcut weight grad");
}

#[cfg(feature = "flex")]
#[test]
fn flex_shortcut_pair_matches_two_stock_convolutions() {
    check_backend::<burn::backend::Flex>("flex");
    check_block_chain::<burn::backend::Flex>();
}

#[cfg(feature = "ndarray")]
#[test]
fn ndarray_shortcut_pair_matches_two_stock_convolutions() {
    check_backend::<burn::backend::NdArray>("ndarray");
    check_block_chain::<burn::backend::NdArray>();
}

#[cfg(feature = "candle")]
#[test]
#[allow(deprecated)]
fn candle_shortcut_pair_matches_two_stock_convolutions() {
    check_backend::<burn::backend::Candle>("candle");
    check_block_chain::<burn::backend::Candle>();
}
