//! `edgessl::ops` BatchNorm against burn's stock `BatchNorm`: outputs, gradients (input,
//! gamma, beta, and the residual of BatchNorm + add + ReLU), running statistics and
//! inference mode, on every compiled CPU backend.

use burn::backend::Autodiff;
use burn::module::{AutodiffModule, Param};
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, ElementConversion, Tensor, TensorData};
use edgessl::ops;

const TOL: f32 = 1e-4;
const EPS: f64 = 1e-5;

fn rel_err<B: Backend, const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let scale = b.clone().abs().max().into_scalar().elem::<f32>().max(1.0);
    (a - b).abs().max().into_scalar().elem::<f32>() / scale
}

/// Some outputs of a ReLU are clipped and some not: a missing or wrong mask would show in
/// the gradients compared after it.
fn assert_partly_clipped<B: Backend>(y: Tensor<B, 4>, ctx: &str) {
    let total: usize = y.dims().iter().product();
    let zeros = y.equal_elem(0.0).int().sum().into_scalar().elem::<i64>();
    assert!(
        zeros > 0 && (zeros as usize) < total,
        "{ctx}: {zeros} of {total} clipped"
    );
}

/// A stock BatchNorm with random affine parameters.
fn stock_bn<B: Backend>(c: usize, dev: &B::Device) -> BatchNorm<Autodiff<B>> {
    let mut bn: BatchNorm<Autodiff<B>> = BatchNormConfig::new(c).with_epsilon(EPS).init(dev);
    bn.gamma = Param::from_tensor(Tensor::random([c], Distribution::Normal(1., 0.5), dev));
    bn.beta = Param::from_tensor(Tensor::random([c], Distribution::Normal(0., 0.5), dev));
    bn
}

/// `ops::batch_norm_train` (or, with `relu`, `ops::batch_norm_relu_train` against burn's
/// `relu` after the stock module: the ReLU mask must gate every gradient) against stock.
fn check_4d<B: Backend>(shape: [usize; 4], affine: bool, relu: bool) {
    let dev = B::Device::default();
    let ctx = format!("{shape:?} affine {affine} relu {relu}");
    let c = shape[1];
    let bn = stock_bn::<B>(c, &dev);
    let x = Tensor::<Autodiff<B>, 4>::random(shape, Distribution::Normal(3., 2.), &dev);
    let r = Tensor::<Autodiff<B>, 4>::random(shape, Distribution::Normal(0., 1.), &dev);

    // Stock (affine off = gamma 1, beta 0 as constants).
    let xs = x.clone().require_grad();
    let ys = if affine {
        bn.forward(xs.clone())
    } else {
        let mut plain: BatchNorm<Autodiff<B>> =
            BatchNormConfig::new(c).with_epsilon(EPS).init(&dev);
        plain.gamma = Param::from_tensor(Tensor::ones([c], &dev));
        plain.beta = Param::from_tensor(Tensor::zeros([c], &dev));
        plain.forward(xs.clone())
    };
    let ys = if relu {
        burn::tensor::activation::relu(ys)
    } else {
        ys
    };
    let gs = (ys.clone() * r.clone()).sum().backward();

    let xf = x.clone().require_grad();
    let gamma = bn.gamma.val().detach().require_grad();
    let beta = bn.beta.val().detach().require_grad();
    let train = if relu {
        ops::batch_norm_relu_train::<Autodiff<B>>
    } else {
        ops::batch_norm_train::<Autodiff<B>>
    };
    let (yf, mean, var) = if affine {
        train(
            xf.clone(),
            Some(gamma.clone()),
            Some(beta.clone()),
            EPS,
            None,
        )
    } else {
        train(xf.clone(), None, None, EPS, None)
    };
    let gf = (yf.clone() * r).sum().backward();

    if relu {
        assert_partly_clipped(yf.clone().inner(), &ctx);
    }

    assert!(rel_err(yf.inner(), ys.inner()) < TOL, "{ctx}: forward");
    assert!(
        rel_err(xf.grad(&gf).unwrap(), xs.grad(&gs).unwrap()) < TOL,
        "{ctx}: input grad"
    );
    if affine {
        assert!(
            rel_err(gamma.grad(&gf).unwrap(), bn.gamma.val().grad(&gs).unwrap()) < TOL,
            "{ctx}: gamma grad"
        );
        assert!(
            rel_err(beta.grad(&gf).unwrap(), bn.beta.val().grad(&gs).unwrap()) < TOL,
            "{ctx}: beta grad"
        );
        // Running statistics: burn averages the biased variance (momentum 0.1).
        let (rm, rv) = ops::update_running_stats(
            Tensor::zeros([c], &dev),
            Tensor::ones([c], &dev),
            mean,
            var,
            shape[0] * shape[2] * shape[3],
            0.1,
            false,
        );
        let stock_rm = bn.running_mean.value_sync();
        assert!(
            rel_err(rm.clone().inner(), stock_rm.clone().inner()) < TOL,
            "{ctx}: running mean {} vs {}",
            rm,
            stock_rm
        );
        assert!(
            rel_err(rv.inner(), bn.running_var.value_sync().inner()) < TOL,
            "{ctx}: running var"
        );

        // Inference mode against the stock module on the inner backend.
        let valid = bn.valid();
        let xi = x.inner();
        let y_ref = valid.forward(xi.clone());
        let y = ops::batch_norm_eval(
            xi,
            valid.running_mean.value(),
            valid.running_var.value(),
            Some(valid.gamma.val()),
            Some(valid.beta.val()),
            EPS,
        );
        assert!(rel_err(y, y_ref) < TOL, "{ctx}: eval");
    }
}

/// `ops::batch_norm_add_relu_train` (a residual block's end) against `relu(stock(x) + r)`:
/// output, the gradients of x, the residual, gamma and beta, the batch statistics; and on
/// the bare backend against `ops::batch_norm_train` then add and ReLU. With `derived`,
/// BatchNorm's input is `2·x`, a tensor nothing but the op holds (as a convolution's output
/// in the model), which its backward overwrites with `dx`.
fn check_add_relu<B: Backend>(shape: [usize; 4], derived: bool) {
    let dev = B::Device::default();
    let ctx = format!("{shape:?} add+relu, derived input {derived}");
    let input = |x: Tensor<Autodiff<B>, 4>| if derived { x * 2.0 } else { x };
    let c = shape[1];
    let bn = stock_bn::<B>(c, &dev);
    let x = Tensor::<Autodiff<B>, 4>::random(shape, Distribution::Normal(3., 2.), &dev);
    let r = Tensor::<Autodiff<B>, 4>::random(shape, Distribution::Normal(0., 1.), &dev);
    let w = Tensor::<Autodiff<B>, 4>::random(shape, Distribution::Normal(0., 1.), &dev);

    let (xs, rs) = (x.clone().require_grad(), r.clone().require_grad());
    let ys = burn::tensor::activation::relu(bn.forward(input(xs.clone())) + rs.clone());
    let gs = (ys.clone() * w.clone()).sum().backward();

    let (xf, rf) = (x.clone().require_grad(), r.clone().require_grad());
    let gamma = bn.gamma.val().detach().require_grad();
    let beta = bn.beta.val().detach().require_grad();
    let (yf, mean, var) = ops::batch_norm_add_relu_train(
        input(xf.clone()),
        rf.clone(),
        gamma.clone(),
        beta.clone(),
        EPS,
        None,
    );
    let gf = (yf.clone() * w).sum().backward();

    assert_partly_clipped(yf.clone().inner(), &ctx);
    assert!(
        rel_err(yf.clone().inner(), ys.inner()) < TOL,
        "{ctx}: forward"
    );
    let grads = [
        ("input", xf.grad(&gf), xs.grad(&gs)),
        ("residual", rf.grad(&gf), rs.grad(&gs)),
    ];
    for (what, got, want) in grads {
        assert!(
            rel_err(got.unwrap(), want.unwrap()) < TOL,
            "{ctx}: {what} grad"
        );
    }
    let params = [
        ("gamma", gamma.grad(&gf), bn.gamma.val().grad(&gs)),
        ("beta", beta.grad(&gf), bn.beta.val().grad(&gs)),
    ];
    for (what, got, want) in params {
        assert!(
            rel_err(got.unwrap(), want.unwrap()) < TOL,
            "{ctx}: {what} grad"
        );
    }
    let (_, mean_ref, var_ref) = ops::batch_norm_train(
        input(x.clone()),
        Some(gamma.clone()),
        Some(beta.clone()),
        EPS,
        None,
    );
    assert!(rel_err(mean.inner(), mean_ref.inner()) < TOL, "{ctx}: mean");
    assert!(rel_err(var.inner(), var_ref.inner()) < TOL, "{ctx}: var");

    // Bare backend (no autodiff): batch statistics, same values. A held input is left as it
    // is; with `derived`, each fused op gets a copy nothing else holds, which it normalises
    // in place (as the target network's maps), and the last call takes `xi` itself.
    let (xi, ri) = (input(x).inner(), r.inner());
    let (gi, bi) = (gamma.inner(), beta.inner());
    let own = |t: Tensor<B, 4>| if derived { t.mul_scalar(1.0) } else { t };
    let (y, _, _) = ops::batch_norm_add_relu_train(
        own(xi.clone()),
        ri.clone(),
        gi.clone(),
        bi.clone(),
        EPS,
        None,
    );
    let (y_relu, _, _) = ops::batch_norm_relu_train(
        own(xi.clone()),
        Some(gi.clone()),
        Some(bi.clone()),
        EPS,
        None,
    );
    let (y_bn, _, _) = ops::batch_norm_train(xi, Some(gi), Some(bi), EPS, None);
    let relu = burn::tensor::activation::relu;
    assert!(
        rel_err(y_relu, relu(y_bn.clone())) < TOL,
        "{ctx}: bare BN + ReLU"
    );
    assert!(rel_err(y, relu(y_bn + ri)) < TOL, "{ctx}: bare backend");
}

fn check_2d<B: Backend>(shape: [usize; 2]) {
    let dev = B::Device::default();
    let c = shape[1];
    let bn = stock_bn::<B>(c, &dev);
    let x = Tensor::<Autodiff<B>, 2>::random(shape, Distribution::Normal(-1., 3.), &dev);
    let r = Tensor::<Autodiff<B>, 2>::random(shape, Distribution::Normal(0., 1.), &dev);
    let xs = x.clone().require_grad();
    let ys = bn.forward(xs.clone());
    let gs = (ys.clone() * r.clone()).sum().backward();
    let xf = x.clone().require_grad();
    let gamma = bn.gamma.val().detach().require_grad();
    let beta = bn.beta.val().detach().require_grad();
    let (yf, _, _) =
        ops::batch_norm_train_2d(xf.clone(), Some(gamma.clone()), Some(beta.clone()), EPS);
    let gf = (yf.clone() * r).sum().backward();
    assert!(rel_err(yf.inner(), ys.inner()) < TOL, "{shape:?}: forward");
    assert!(
        rel_err(xf.grad(&gf).unwrap(), xs.grad(&gs).unwrap()) < TOL,
        "{shape:?}: dx"
    );
    assert!(rel_err(gamma.grad(&gf).unwrap(), bn.gamma.val().grad(&gs).unwrap()) < TOL);
    assert!(rel_err(beta.grad(&gf).unwrap(), bn.beta.val().grad(&gs).unwrap()) < TOL);

    let valid = bn.valid();
    let y_ref = valid.forward(x.clone().inner());
    let y = ops::batch_norm_eval_2d(
        x.inner(),
        valid.running_mean.value(),
        valid.running_var.value(),
        Some(valid.gamma.val()),
        Some(valid.beta.val()),
        EPS,
    );
    assert!(rel_err(y, y_ref) < TOL, "{shape:?}: eval");
}

/// Two-pass variance: a large common offset must not destroy the variance.
fn check_two_pass<B: Backend>() {
    let dev = B::Device::default();
    let vals: Vec<f32> = (0..2 * 2 * 4 * 4)
        .map(|i| 1.0e4 + ((i * 7) % 5) as f32 * 0.01)
        .collect();
    let x = Tensor::<B, 4>::from_data(TensorData::new(vals.clone(), [2, 2, 4, 4]), &dev);
    let (_, _, var) = ops::batch_norm_train(x, None, None, EPS, None);
    let var: Vec<f32> = var.into_data().into_vec().unwrap();
    for (ch, v) in var.iter().enumerate() {
        let xs: Vec<f64> = (0..2)
            .flat_map(|n| (0..16).map(move |k| (n * 2 + ch) * 16 + k))
            .map(|i| vals[i] as f64)
            .collect();
        let m = xs.iter().sum::<f64>() / xs.len() as f64;
        let exact = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(
            ((*v as f64) - exact).abs() < 0.05 * exact,
            "channel {ch}: {v} vs {exact}"
        );
    }
}

/// PyTorch convention: unbiased running variance.
fn check_unbiased<B: Backend>() {
    let dev = B::Device::default();
    let (m, v) = ops::update_running_stats::<B>(
        Tensor::zeros([1], &dev),
        Tensor::ones([1], &dev),
        Tensor::from_floats([2.0], &dev),
        Tensor::from_floats([3.0], &dev),
        4,
        0.5,
        true,
    );
    assert_eq!(m.into_scalar().elem::<f32>(), 1.0);
    assert_eq!(v.into_scalar().elem::<f32>(), 0.5 + 0.5 * 4.0);
}

/// γ without β is not fused: exercises the 2-D-view composite against stock (β = 0).
fn check_composite<B: Backend>(shape: [usize; 4]) {
    let dev = B::Device::default();
    let c = shape[1];
    let mut bn = stock_bn::<B>(c, &dev);
    bn.beta = Param::from_tensor(Tensor::zeros([c], &dev));
    let x = Tensor::<Autodiff<B>, 4>::random(shape, Distribution::Normal(3., 2.), &dev);
    let r = Tensor::<Autodiff<B>, 4>::random(shape, Distribution::Normal(0., 1.), &dev);
    let xs = x.clone().require_grad();
    let ys = bn.forward(xs.clone());
    let gs = (ys.clone() * r.clone()).sum().backward();
    let xf = x.require_grad();
    let gamma = bn.gamma.val().detach().require_grad();
    let (yf, _, _) = ops::batch_norm_train(xf.clone(), Some(gamma.clone()), None, EPS, None);
    let gf = (yf.clone() * r).sum().backward();
    assert!(
        rel_err(yf.inner(), ys.inner()) < TOL,
        "{shape:?}: composite forward"
    );
    assert!(
        rel_err(xf.grad(&gf).unwrap(), xs.grad(&gs).unwrap()) < TOL,
        "{shape:?}: composite dx"
    );
    assert!(rel_err(gamma.grad(&gf).unwrap(), bn.gamma.val().grad(&gs).unwrap()) < TOL);
}

fn check_all<B: Backend>() {
    check_composite::<B>([4, 3, 5, 6]);
    check_composite::<B>([1, 2, 3, 3]);
    B::seed(&B::Device::default(), 11);
    for shape in [[4, 3, 5, 6], [1, 2, 4, 4], [3, 1, 3, 7], [2, 4, 1, 1]] {
        for relu in [false, true] {
            check_4d::<B>(shape, true, relu);
            check_4d::<B>(shape, false, relu);
        }
        check_add_relu::<B>(shape, false);
        check_add_relu::<B>(shape, true);
    }
    check_2d::<B>([8, 5]);
    check_2d::<B>([2, 3]);
    check_two_pass::<B>();
    check_unbiased::<B>();
}

#[cfg(feature = "flex")]
#[test]
fn batch_norm_flex() {
    assert!(ops::has_fused_batch_norm::<Autodiff<burn::backend::Flex>>());
    check_all::<burn::backend::Flex>();
}

#[cfg(feature = "ndarray")]
#[test]
fn batch_norm_ndarray() {
    check_all::<burn::backend::NdArray>();
}

#[cfg(feature = "candle")]
#[allow(deprecated)] // burn-candle is deprecated upstream but still a supported backend here
#[test]
fn batch_norm_candle() {
    check_all::<burn::backend::Candle>();
}
