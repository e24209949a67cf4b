//! `ops::conv2d_forward` / `ops::batch_norm_forward` against the modules' own `forward`:
//! outputs, parameter gradients, running statistics, and inference mode.

use burn::backend::Autodiff;
use burn::module::{AutodiffModule, Param};
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, ElementConversion, Tensor};
use edgessl::ops;

const TOL: f32 = 1e-4;

fn rel_err<B: Backend, const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let scale = b.clone().abs().max().into_scalar().elem::<f32>().max(1.0);
    (a - b).abs().max().into_scalar().elem::<f32>() / scale
}

#[cfg(any(feature = "flex", feature = "ndarray"))]
fn check_conv<B: Backend>() {
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    type A<B> = Autodiff<B>;
    let dev = B::Device::default();
    for (pad, stride, bias) in [
        (PaddingConfig2d::Explicit(1, 1, 1, 1), [1, 1], false),
        (PaddingConfig2d::Same, [1, 1], true),
        (PaddingConfig2d::Valid, [2, 2], true),
        (PaddingConfig2d::Explicit(1, 1, 1, 1), [2, 2], false),
    ] {
        let m = Conv2dConfig::new([3, 5], [3, 3])
            .with_stride(stride)
            .with_padding(pad.clone())
            .with_bias(bias)
            .init::<A<B>>(&dev);
        let x = Tensor::<A<B>, 4>::random([2, 3, 9, 8], Distribution::Normal(0., 1.), &dev);
        let y0 = m.forward(x.clone());
        let g0 = y0.clone().powi_scalar(2).sum().backward();
        let y1 = ops::conv2d_forward(&m, x);
        let g1 = y1.clone().powi_scalar(2).sum().backward();
        assert!(rel_err(y1.inner(), y0.inner()) < TOL, "{pad:?}");
        let w = m.weight.val();
        assert!(
            rel_err(w.grad(&g1).unwrap(), w.grad(&g0).unwrap()) < TOL,
            "{pad:?}"
        );
        if let Some(b) = &m.bias {
            let b = b.val();
            assert!(rel_err(b.grad(&g1).unwrap(), b.grad(&g0).unwrap()) < TOL);
        }
    }
}

fn bn_pair<B: Backend>(c: usize, dev: &B::Device) -> [BatchNorm<Autodiff<B>>; 2] {
    let mk = || {
        let mut bn: BatchNorm<Autodiff<B>> = BatchNormConfig::new(c).init(dev);
        bn.gamma = Param::from_tensor(Tensor::ones([c], dev).mul_scalar(1.5));
        bn.beta = Param::from_tensor(Tensor::ones([c], dev).mul_scalar(-0.5));
        bn
    };
    // Two modules (not clones: clones share running state).
    [mk(), mk()]
}

fn check_bn<B: Backend>() {
    let dev = B::Device::default();
    let [a, b] = bn_pair::<B>(4, &dev);
    for step in 0..3 {
        let x = Tensor::<Autodiff<B>, 4>::random([3, 4, 5, 5], Distribution::Normal(2., 3.), &dev)
            .require_grad();
        let y0 = a.forward(x.clone());
        let g0 = y0.clone().powi_scalar(2).sum().backward();
        let y1 = ops::batch_norm_forward(&b, x.clone());
        let g1 = y1.clone().powi_scalar(2).sum().backward();
        assert!(rel_err(y1.inner(), y0.inner()) < TOL, "step {step}");
        let (ga, gb) = (a.gamma.val(), b.gamma.val());
        assert!(rel_err(gb.grad(&g1).unwrap(), ga.grad(&g0).unwrap()) < TOL);
        let (ba, bb) = (a.beta.val(), b.beta.val());
        assert!(rel_err(bb.grad(&g1).unwrap(), ba.grad(&g0).unwrap()) < TOL);
    }
    let rm = |m: &BatchNorm<Autodiff<B>>| m.running_mean.value_sync().inner();
    let rv = |m: &BatchNorm<Autodiff<B>>| m.running_var.value_sync().inner();
    assert!(rel_err(rm(&b), rm(&a)) < TOL, "running mean");
    assert!(rel_err(rv(&b), rv(&a)) < TOL, "running var");
    // Inference mode (inner backend) with those running statistics; rank 2 input too.
    let (va, vb) = (a.valid(), b.valid());
    let x = Tensor::<B, 4>::random([2, 4, 3, 3], Distribution::Normal(1., 2.), &dev);
    assert!(rel_err(ops::batch_norm_forward(&vb, x.clone()), va.forward(x)) < TOL);
    let x = Tensor::<B, 2>::random([6, 4], Distribution::Normal(1., 2.), &dev);
    assert!(rel_err(ops::batch_norm_forward(&vb, x.clone()), va.forward(x)) < TOL);
    // Rank-2 training input (projector head).
    let [c, d] = bn_pair::<B>(4, &dev);
    let x = Tensor::<Autodiff<B>, 2>::random([8, 4], Distribution::Normal(0., 1.), &dev);
    assert!(
        rel_err(
            ops::batch_norm_forward(&d, x.clone()).inner(),
            c.forward(x).inner()
        ) < TOL
    );
}

#[cfg(feature = "flex")]
#[test]
fn modules_flex() {
    check_conv::<burn::backend::Flex>();
    check_bn::<burn::backend::Flex>();
}

#[cfg(feature = "ndarray")]
#[test]
fn modules_ndarray() {
    check_conv::<burn::backend::NdArray>();
    check_bn::<burn::backend::NdArray>();
}

#[cfg(feature = "candle")]
#[allow(deprecated)] // burn-candle is deprecated upstream but still a supported backend here
#[test]
fn modules_candle() {
    check_bn::<burn::backend::Candle>();
}
