//! `edgessl::ops::batch_norm_relu_conv2d` (BatchNorm + ReLU applied in the convolution's
//! input read) against burn's stock `BatchNorm`, `relu` and `conv2d`: output, the gradients
//! of the input, gamma, beta and the weight, the batch statistics, and the bare backend, on
//! every compiled CPU backend and on geometries that take the implicit GEMM (3x3 on ≥ 16
//! channels, stride 1 and 2) and the im2col path (few channels, 1x1 stride 2).

use burn::backend::Autodiff;
use burn::module::Param;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::backend::Backend;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Distribution, ElementConversion, Tensor};
use edgessl::ops;

const TOL: f32 = 1e-4;
const EPS: f64 = 1e-5;

fn rel_err<B: Backend, const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let scale = b.clone().abs().max().into_scalar().elem::<f32>().max(1.0);
    (a - b).abs().max().into_scalar().elem::<f32>() / scale
}

/// One geometry: input `[N, C, H, W]`, output channels, kernel, stride (padding kernel / 2).
fn check<B: Backend>(shape: [usize; 4], co: usize, k: usize, s: usize) {
    let dev = B::Device::default();
    let ctx = format!("{shape:?} -> {co} k{k} s{s}");
    let c = shape[1];
    let mut bn: BatchNorm<Autodiff<B>> = BatchNormConfig::new(c).with_epsilon(EPS).init(&dev);
    bn.gamma = Param::from_tensor(Tensor::random([c], Distribution::Normal(1., 0.5), &dev));
    bn.beta = Param::from_tensor(Tensor::random([c], Distribution::Normal(0., 0.5), &dev));
    let x = Tensor::<Autodiff<B>, 4>::random(shape, Distribution::Normal(3., 2.), &dev);
    let w = Tensor::<Autodiff<B>, 4>::random([co, c, k, k], Distribution::Normal(0., 0.3), &dev);
    let opts = ConvOptions::new([s, s], [k / 2, k / 2], [1, 1], 1);

    // Stock: BatchNorm module, relu, conv2d.
    let (xs, ws) = (x.clone().require_grad(), w.clone().require_grad());
    let hs = burn::tensor::activation::relu(bn.forward(xs.clone()));
    let ys = burn::tensor::module::conv2d(hs, ws.clone(), None, opts.clone());
    let r = Tensor::<Autodiff<B>, 4>::random(ys.dims(), Distribution::Normal(0., 1.), &dev);
    let gs = (ys.clone() * r.clone()).sum().backward();

    let (xf, wf) = (x.clone().require_grad(), w.clone().require_grad());
    let gamma = bn.gamma.val().detach().require_grad();
    let beta = bn.beta.val().detach().require_grad();
    let (yf, mean, var, y_stats) = ops::batch_norm_relu_conv2d(
        xf.clone(),
        gamma.clone(),
        beta.clone(),
        EPS,
        wf.clone(),
        opts.clone(),
        None,
    );
    let gf = (yf.clone() * r).sum().backward();

    assert!(
        rel_err(yf.clone().inner(), ys.inner()) < TOL,
        "{ctx}: forward"
    );
    let grads = [
        ("input", xf.grad(&gf), xs.grad(&gs)),
        ("weight", wf.grad(&gf), ws.grad(&gs)),
    ];
    for (what, got, want) in grads {
        let e = rel_err(got.unwrap(), want.unwrap());
        assert!(e < TOL, "{ctx}: {what} grad, error {e}");
    }
    let params = [
        ("gamma", gamma.grad(&gf), bn.gamma.val().grad(&gs)),
        ("beta", beta.grad(&gf), bn.beta.val().grad(&gs)),
    ];
    for (what, got, want) in params {
        let e = rel_err(got.unwrap(), want.unwrap());
        assert!(e < TOL, "{ctx}: {what} grad, error {e}");
    }
    let (h_ref, mean_ref, var_ref) = ops::batch_norm_relu_train(
        x.clone(),
        Some(gamma.clone()),
        Some(beta.clone()),
        EPS,
        None,
    );
    assert!(rel_err(mean.inner(), mean_ref.inner()) < TOL, "{ctx}: mean");
    assert!(rel_err(var.inner(), var_ref.inner()) < TOL, "{ctx}: var");
    // The statistics of the output handed on to the next BatchNorm, where computed: the
    // next BatchNorm gives the same result with them as with its own.
    let y_in = yf.clone().inner();
    if let Some(s) = y_stats {
        let with = ops::batch_norm_train(y_in.clone(), None, None, EPS, Some(s));
        let own = ops::batch_norm_train(y_in, None, None, EPS, None);
        assert!(rel_err(with.0, own.0) < TOL, "{ctx}: next BatchNorm");
        assert!(rel_err(with.2, own.2) < TOL, "{ctx}: output variance");
    }
    // Some of the normalised values are clipped and some not, so the ReLU is exercised.
    let zeros = h_ref
        .inner()
        .equal_elem(0.0)
        .int()
        .sum()
        .into_scalar()
        .elem::<i64>() as usize;
    let total = shape.iter().product::<usize>();
    assert!(
        zeros > 0 && zeros < total,
        "{ctx}: {zeros} of {total} clipped"
    );

    // Bare backend (no autodiff): the same op against the two ops it fuses.
    let (xi, wi) = (x.inner(), w.inner());
    let (gi, bi) = (gamma.inner(), beta.inner());
    let fused = |given| {
        ops::batch_norm_relu_conv2d(
            xi.clone(),
            gi.clone(),
            bi.clone(),
            EPS,
            wi.clone(),
            opts.clone(),
            given,
        )
        .0
    };
    let y = fused(None);
    let (h, _, _) =
        ops::batch_norm_relu_train(xi.clone(), Some(gi.clone()), Some(bi.clone()), EPS, None);
    let y_ref = ops::conv2d(h, wi.clone(), None, opts.clone());
    assert!(rel_err(y.clone(), y_ref) < TOL, "{ctx}: bare backend");

    // Given the input's statistics (as a convolution hands them on: here an identity 1x1
    // one) the op skips its own pass, same output; statistics of another shape are unused.
    let identity = |x: Tensor<B, 4>| {
        let eye = Tensor::<B, 2>::eye(c, &dev).reshape([c, c, 1, 1]);
        ops::conv2d_with_stats(x, eye, ConvOptions::new([1, 1], [0, 0], [1, 1], 1))
    };
    let (x_again, given) = identity(xi.clone());
    assert!(rel_err(x_again, xi.clone()) < TOL, "{ctx}: identity conv");
    let wrong_shape = identity(xi.clone().narrow(0, 0, 1)).1;
    for given in [given, wrong_shape] {
        assert!(
            rel_err(fused(given), y.clone()) < TOL,
            "{ctx}: given statistics"
        );
    }
}

fn check_all<B: Backend>() {
    B::seed(&B::Device::default(), 5);
    // Implicit GEMM on AVX2 CPUs: 3x3 on 16 channels, stride 1 and 2, odd sizes. (Square
    // at stride 2: candle's stock backward, the reference, rejects per-axis output padding.)
    check::<B>([2, 16, 6, 7], 16, 3, 1);
    check::<B>([3, 16, 7, 7], 32, 3, 2);
    // Rows of at least 8 (16 at stride 2) floats: the planes' vector fill, normalising.
    check::<B>([2, 16, 9, 10], 16, 3, 1);
    check::<B>([2, 16, 18, 18], 16, 3, 2);
    // Winograd forward (3x3 stride 1, map ≥ 12x12) with BN + ReLU applied in its fill.
    check::<B>([2, 16, 14, 17], 16, 3, 1);
    // im2col path: few channels, and a 1x1 stride-2 shortcut.
    check::<B>([2, 3, 5, 5], 4, 3, 1);
    check::<B>([2, 8, 6, 6], 16, 1, 2);
}

#[cfg(feature = "flex")]
#[test]
fn batch_norm_relu_conv_flex() {
    check_all::<burn::backend::Flex>();
}

#[cfg(feature = "ndarray")]
#[test]
fn batch_norm_relu_conv_ndarray() {
    check_all::<burn::backend::NdArray>();
}

#[cfg(feature = "candle")]
#[allow(deprecated)] // burn-candle is deprecated upstream but still a supported backend here
#[test]
fn batch_norm_relu_conv_candle() {
    check_all::<burn::backend::Candle>();
}
