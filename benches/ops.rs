//! Per-op profile of one training step, stock burn vs `edgessl::ops`.
//!
//! `cargo bench --bench ops --features ndarray,candle -- [--backend flex|ndarray|candle]
//! [--batch 64] [--size 32] [--reps 5] [--only ops|step|parts] [--impl stock|fast|..]`
//!
//! Prints a table (op, shape, ms fwd, ms bwd; median of `reps`) per backend, then a
//! BYOL-style step of a residual trunk (conv3x3 3→32 + BN + ReLU, basic blocks 32→32 s1,
//! 32→64 s2, 64→128 s2, GAP, projector, predictor; online forward+backward of both views as
//! one batch, target forward without grad) with stock and fast ops.

use std::time::Instant;

use burn::backend::Autodiff;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::backend::Backend;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Distribution, Tensor, activation::relu};
use edgessl::ops;

type Ad<B> = Autodiff<B>;

struct Cfg {
    batch: usize,
    size: usize,
    reps: usize,
    only: Option<String>,
    backends: Vec<String>,
    impls: Vec<String>,
}

fn parse() -> Cfg {
    let mut cfg = Cfg {
        batch: 64,
        size: 32,
        reps: 5,
        only: None,
        backends: vec![],
        impls: vec![],
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let next = || args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--batch" => cfg.batch = next().parse().unwrap(),
            "--size" => cfg.size = next().parse().unwrap(),
            "--reps" => cfg.reps = next().parse().unwrap(),
            "--only" => cfg.only = Some(next()),
            "--backend" => cfg.backends.push(next()),
            "--impl" => cfg.impls.push(next()),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    if cfg.backends.is_empty() {
        cfg.backends.push("flex".into());
    }
    cfg
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs `f` (returning fwd/bwd ms) once to warm up, then `reps` times; medians.
fn measure(reps: usize, mut f: impl FnMut() -> (f64, f64)) -> (f64, f64) {
    f();
    let (mut a, mut b) = (vec![], vec![]);
    for _ in 0..reps {
        let (x, y) = f();
        a.push(x);
        b.push(y);
    }
    (median(a), median(b))
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Times `op` (forward, synced) and then the backward of its output's sum: ms each.
fn fwd_bwd<B: Backend, const D: usize>(
    dev: &B::Device,
    op: impl FnOnce() -> Tensor<Ad<B>, D>,
) -> (f64, f64) {
    let t = Instant::now();
    let y = op();
    B::sync(dev).unwrap();
    let f = ms(t);
    (f, bwd(y))
}

/// Milliseconds of the backward of `y.sum()`.
fn bwd<B: Backend, const D: usize>(y: Tensor<Ad<B>, D>) -> f64 {
    let t = Instant::now();
    let _g = y.sum().backward();
    ms(t)
}

fn row(backend: &str, op: &str, shape: &str, (f, b): (f64, f64)) {
    let b = if b.is_nan() {
        "-".to_string()
    } else {
        format!("{b:.2}")
    };
    println!("| {backend} | {op} | {shape} | {f:.2} | {b} |");
}

/// (name, cin, cout, k, stride, spatial divisor of the input)
const CONVS: &[(&str, usize, usize, usize, usize, usize)] = &[
    ("stem", 3, 32, 3, 1, 1),
    ("b1", 32, 32, 3, 1, 1),
    ("b2a s2", 32, 64, 3, 2, 1),
    ("b2b", 64, 64, 3, 1, 2),
    ("b2 sc 1x1 s2", 32, 64, 1, 2, 1),
    ("b3a s2", 64, 128, 3, 2, 2),
    ("b3b", 128, 128, 3, 1, 4),
    ("b3 sc 1x1 s2", 64, 128, 1, 2, 2),
];

fn bench_ops<B: Backend>(name: &str, cfg: &Cfg) {
    // `--impl fast` skips burn's stock ops (slow on the big maps) in this table.
    let stock_too = cfg.impls.is_empty() || cfg.impls.iter().any(|i| i.starts_with("stock"));
    let dev = B::Device::default();
    let n = cfg.batch;
    let reps = cfg.reps;
    println!("\n### {name}: per-op, batch {n}, {s}x{s}\n", s = cfg.size);
    println!("| backend | op | shape | ms fwd | ms bwd |");
    println!("|---|---|---|---|---|");
    for &(op, ci, co, k, s, div) in CONVS {
        let hw = cfg.size / div;
        let shape = format!("{n}x{ci}x{hw}x{hw} -> {co} k{k} s{s}");
        let opts = ConvOptions::new([s, s], [k / 2, k / 2], [1, 1], 1);
        let x = Tensor::<Ad<B>, 4>::random([n, ci, hw, hw], Distribution::Normal(0., 1.), &dev);
        let w = Tensor::<Ad<B>, 4>::random([co, ci, k, k], Distribution::Normal(0., 0.1), &dev);
        if stock_too {
            // Stock: autodiff fwd and bwd (x and w both need grads, as inside the trunk).
            let stock = measure(reps, || {
                let (x, w) = (x.clone().require_grad(), w.clone().require_grad());
                fwd_bwd(&dev, || {
                    burn::tensor::module::conv2d(x, w, None, opts.clone())
                })
            });
            row(name, &format!("conv {op} stock"), &shape, stock);
            // Stock backward split: input grad and weight grad on the inner backend.
            let (xi, wi) = (x.clone().inner(), w.clone().inner());
            let yi = burn::tensor::module::conv2d(xi.clone(), wi.clone(), None, opts.clone());
            let gi = yi.ones_like();
            let split = measure(reps, || {
                let t = Instant::now();
                let _dx = B::conv2d_x_backward(
                    xi.clone().into_primitive().tensor(),
                    wi.clone().into_primitive().tensor(),
                    gi.clone().into_primitive().tensor(),
                    opts.clone(),
                );
                let a = ms(t);
                let t = Instant::now();
                let _dw = B::conv2d_weight_backward(
                    xi.clone().into_primitive().tensor(),
                    wi.clone().into_primitive().tensor(),
                    gi.clone().into_primitive().tensor(),
                    opts.clone(),
                );
                (a, ms(t))
            });
            row(
                name,
                &format!("conv {op} stock dx | dw"),
                &shape,
                (split.0, split.1),
            );
        }
        let fast = measure(reps, || {
            let (x, w) = (x.clone().require_grad(), w.clone().require_grad());
            fwd_bwd(&dev, || ops::conv2d(x, w, None, opts.clone()))
        });
        row(name, &format!("conv {op} fast"), &shape, fast);
        // The fast backward split: only x, then only w, requires a gradient.
        let dx_only = measure(reps, || {
            let y = ops::conv2d(x.clone().require_grad(), w.clone(), None, opts.clone());
            (bwd(y), f64::NAN)
        });
        let dw_only = measure(reps, || {
            let y = ops::conv2d(x.clone(), w.clone().require_grad(), None, opts.clone());
            (bwd(y), f64::NAN)
        });
        row(
            name,
            &format!("conv {op} fast dx | dw"),
            &shape,
            (dx_only.0, dw_only.0),
        );
    }

    // BatchNorm (train mode, affine) at the trunk's activation shapes.
    for &(c, div) in &[(32usize, 1usize), (64, 2), (128, 4)] {
        let hw = cfg.size / div;
        let shape = format!("{n}x{c}x{hw}x{hw}");
        let x = Tensor::<Ad<B>, 4>::random([n, c, hw, hw], Distribution::Normal(0.5, 2.), &dev);
        let bn: BatchNorm<Ad<B>> = BatchNormConfig::new(c).init(&dev);
        if stock_too {
            let stock = measure(reps, || {
                let x = x.clone().require_grad();
                fwd_bwd(&dev, || bn.forward(x))
            });
            row(name, "batchnorm stock", &shape, stock);
        }
        let gamma = bn.gamma.val();
        let beta = bn.beta.val();
        let fast = measure(reps, || {
            let x = x.clone().require_grad();
            fwd_bwd(&dev, || {
                ops::batch_norm_train(x, Some(gamma.clone()), Some(beta.clone()), 1e-5, None).0
            })
        });
        row(name, "batchnorm ops (fused)", &shape, fast);
        if stock_too {
            let comp = measure(reps, || {
                let x = x.clone().require_grad();
                fwd_bwd(&dev, || {
                    ops::batch_norm_train_composite(
                        x,
                        Some(gamma.clone()),
                        Some(beta.clone()),
                        1e-5,
                    )
                    .0
                })
            });
            row(name, "batchnorm 2-D composite", &shape, comp);
        }

        let r = measure(reps, || {
            let x = x.clone().require_grad();
            fwd_bwd(&dev, || relu(x))
        });
        row(name, "relu", &shape, r);
        let x2 = x.clone().detach();
        let r = measure(reps, || {
            let (a, b) = (x.clone().require_grad(), x2.clone().require_grad());
            fwd_bwd(&dev, || a + b)
        });
        row(name, "add (residual)", &shape, r);
        if c == 128 {
            let r = measure(reps, || {
                let x = x.clone().require_grad();
                fwd_bwd(&dev, || {
                    x.reshape([n * c, hw * hw]).mean_dim(1).reshape([n, c])
                })
            });
            row(name, "global mean-pool (2-D)", &shape, r);
        }
    }
    for &(din, dout) in &[(128usize, 512usize), (512, 128)] {
        let shape = format!("{}x{din} -> {dout}", 2 * n);
        let x = Tensor::<Ad<B>, 2>::random([2 * n, din], Distribution::Normal(0., 1.), &dev);
        let w = Tensor::<Ad<B>, 2>::random([din, dout], Distribution::Normal(0., 0.05), &dev);
        let r = measure(reps, || {
            let (x, w) = (x.clone().require_grad(), w.clone().require_grad());
            fwd_bwd(&dev, || x.matmul(w))
        });
        row(name, "linear", &shape, r);
    }
}

// ---------------------------------------------------------------------------------------
// Whole BYOL-style step on a residual trunk, written with bare parameter tensors so the
// same code runs with stock or fast ops.

#[derive(Clone, Copy, PartialEq)]
enum Impl {
    /// burn's conv2d and BatchNorm module.
    Stock,
    /// burn's conv2d, 2-D-view BatchNorm (the 2.8 s/step baseline of BURN_NOTES.md).
    StockConvBn2d,
    /// `ops::conv2d` and 2-D-view BatchNorm.
    Fast,
}

impl Impl {
    fn name(self) -> &'static str {
        match self {
            Impl::Stock => "stock",
            Impl::StockConvBn2d => "stock conv + 2-D BN",
            Impl::Fast => "fast",
        }
    }
}

struct Conv<B: Backend> {
    w: Tensor<B, 4>,
    stride: usize,
}

struct Bn<B: Backend> {
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    stock: BatchNorm<B>,
}

struct Block<B: Backend> {
    c1: Conv<B>,
    n1: Bn<B>,
    c2: Conv<B>,
    n2: Bn<B>,
    sc: Option<(Conv<B>, Bn<B>)>,
}

struct Net<B: Backend> {
    stem: Conv<B>,
    stem_bn: Bn<B>,
    blocks: Vec<Block<B>>,
    p1: Tensor<B, 2>,
    p2: Tensor<B, 2>,
    q1: Tensor<B, 2>,
    q2: Tensor<B, 2>,
}

fn conv_p<B: Backend>(ci: usize, co: usize, k: usize, stride: usize, dev: &B::Device) -> Conv<B> {
    let std = (2.0 / (ci * k * k) as f64).sqrt();
    Conv {
        w: Tensor::random([co, ci, k, k], Distribution::Normal(0., std), dev).require_grad(),
        stride,
    }
}

fn bn_p<B: Backend>(c: usize, dev: &B::Device) -> Bn<B> {
    Bn {
        gamma: Tensor::ones([c], dev).require_grad(),
        beta: Tensor::zeros([c], dev).require_grad(),
        stock: BatchNormConfig::new(c).init(dev),
    }
}

fn lin_p<B: Backend>(i: usize, o: usize, dev: &B::Device) -> Tensor<B, 2> {
    Tensor::random(
        [i, o],
        Distribution::Normal(0., (1.0 / i as f64).sqrt()),
        dev,
    )
    .require_grad()
}

impl<B: Backend> Net<B> {
    fn new(cin: usize, dev: &B::Device) -> Self {
        let block = |ci: usize, co: usize, s: usize| Block {
            c1: conv_p(ci, co, 3, s, dev),
            n1: bn_p(co, dev),
            c2: conv_p(co, co, 3, 1, dev),
            n2: bn_p(co, dev),
            sc: (ci != co || s != 1).then(|| (conv_p(ci, co, 1, s, dev), bn_p(co, dev))),
        };
        Net {
            stem: conv_p(cin, 32, 3, 1, dev),
            stem_bn: bn_p(32, dev),
            blocks: vec![block(32, 32, 1), block(32, 64, 2), block(64, 128, 2)],
            p1: lin_p(128, 512, dev),
            p2: lin_p(512, 128, dev),
            q1: lin_p(128, 512, dev),
            q2: lin_p(512, 128, dev),
        }
    }

    fn conv(&self, m: &Conv<B>, x: Tensor<B, 4>, imp: Impl) -> Tensor<B, 4> {
        let k = m.w.dims()[2];
        let opts = ConvOptions::new([m.stride, m.stride], [k / 2, k / 2], [1, 1], 1);
        match imp {
            Impl::Stock | Impl::StockConvBn2d => {
                burn::tensor::module::conv2d(x, m.w.clone(), None, opts)
            }
            Impl::Fast => ops::conv2d(x, m.w.clone(), None, opts),
        }
    }

    fn bn(&self, m: &Bn<B>, x: Tensor<B, 4>, imp: Impl) -> Tensor<B, 4> {
        match imp {
            Impl::Stock => m.stock.forward(x),
            Impl::Fast | Impl::StockConvBn2d => {
                ops::batch_norm_train(x, Some(m.gamma.clone()), Some(m.beta.clone()), 1e-5, None).0
            }
        }
    }

    fn bn1d(&self, x: Tensor<B, 2>, imp: Impl) -> Tensor<B, 2> {
        match imp {
            // affine off, as in the reference projector
            Impl::Stock => {
                let [n, c] = x.dims();
                let m: BatchNorm<B> = BatchNormConfig::new(c).init(&x.device());
                let _ = n;
                m.forward(x)
            }
            Impl::Fast | Impl::StockConvBn2d => ops::batch_norm_train_2d(x, None, None, 1e-5).0,
        }
    }

    fn trunk(&self, x: Tensor<B, 4>, imp: Impl) -> Tensor<B, 2> {
        let mut h = relu(self.bn(&self.stem_bn, self.conv(&self.stem, x, imp), imp));
        for b in &self.blocks {
            let o = relu(self.bn(&b.n1, self.conv(&b.c1, h.clone(), imp), imp));
            let o = self.bn(&b.n2, self.conv(&b.c2, o, imp), imp);
            let s = match &b.sc {
                Some((c, n)) => self.bn(n, self.conv(c, h, imp), imp),
                None => h,
            };
            h = relu(o + s);
        }
        let [n, c, hh, ww] = h.dims();
        h.reshape([n * c, hh * ww]).mean_dim(1).reshape([n, c])
    }

    fn mlp(&self, x: Tensor<B, 2>, a: &Tensor<B, 2>, b: &Tensor<B, 2>, imp: Impl) -> Tensor<B, 2> {
        relu(self.bn1d(x.matmul(a.clone()), imp)).matmul(b.clone())
    }
}

fn cos_loss<B: Backend>(p: Tensor<B, 2>, z: Tensor<B, 2>) -> Tensor<B, 1> {
    let pn = p.clone() / (p.clone() * p).sum_dim(1).sqrt().add_scalar(1e-8);
    let zn = z.clone() / (z.clone() * z).sum_dim(1).sqrt().add_scalar(1e-8);
    (pn * zn)
        .sum_dim(1)
        .mean()
        .neg()
        .mul_scalar(2.0)
        .add_scalar(2.0)
}

fn bench_step<B: Backend>(name: &str, cfg: &Cfg) {
    let dev = B::Device::default();
    let n = cfg.batch;
    let s = cfg.size;
    let net = Net::<Ad<B>>::new(3, &dev);
    let v = Tensor::<Ad<B>, 4>::random([2 * n, 3, s, s], Distribution::Normal(0., 1.), &dev);
    println!("\n### {name}: BYOL-style step, batch {n} x 2 views, {s}x{s}x3\n");
    println!("| backend | impl | online fwd ms | target fwd ms | bwd ms | step s |");
    println!("|---|---|---|---|---|---|");
    let impls: Vec<Impl> = [Impl::Stock, Impl::StockConvBn2d, Impl::Fast]
        .into_iter()
        .filter(|i| cfg.impls.is_empty() || cfg.impls.iter().any(|n| n == i.name()))
        .collect();
    for imp in impls {
        let reps = if imp != Impl::Fast {
            cfg.reps.min(2)
        } else {
            cfg.reps.min(3)
        };
        let mut rows = vec![];
        for r in 0..=reps {
            let t = Instant::now();
            let f = net.trunk(v.clone(), imp);
            let z = net.mlp(f, &net.p1, &net.p2, imp);
            let p = net.mlp(z, &net.q1, &net.q2, imp);
            B::sync(&dev).unwrap();
            let t_on = ms(t);
            let t = Instant::now();
            // Target: same weights (SimSiam-like), no grad; the cost is one forward.
            let zt = net
                .mlp(net.trunk(v.clone(), imp), &net.p1, &net.p2, imp)
                .detach();
            B::sync(&dev).unwrap();
            let t_tg = ms(t);
            let t = Instant::now();
            let [p1, p2] = [p.clone().narrow(0, 0, n), p.narrow(0, n, n)];
            let [z1, z2] = [zt.clone().narrow(0, 0, n), zt.narrow(0, n, n)];
            let loss = cos_loss(p1, z2) + cos_loss(p2, z1);
            let _g = loss.backward();
            let t_bw = ms(t);
            if r > 0 {
                rows.push((t_on, t_tg, t_bw));
            }
        }
        let m = |f: fn(&(f64, f64, f64)) -> f64| median(rows.iter().map(f).collect());
        let (a, b, c) = (m(|r| r.0), m(|r| r.1), m(|r| r.2));
        println!(
            "| {name} | {} | {a:.0} | {b:.0} | {c:.0} | {:.2} |",
            imp.name(),
            (a + b + c) / 1e3
        );
    }
}

/// Pieces of the fast conv at the b1 shape (64x32x32x32 -> 32), to choose layouts.
fn bench_parts<B: Backend>(name: &str, cfg: &Cfg) {
    let dev = B::Device::default();
    let (n, c, hw, co) = (cfg.batch, 32usize, cfg.size, 32usize);
    let (k, p) = (c * 9, hw * hw);
    let reps = cfg.reps;
    let t1 = |f: &mut dyn FnMut()| {
        measure(reps, || {
            let t = Instant::now();
            f();
            B::sync(&dev).unwrap();
            (ms(t), f64::NAN)
        })
    };
    let x = Tensor::<B, 4>::random([n, c, hw, hw], Distribution::Normal(0., 1.), &dev);
    let w = Tensor::<B, 4>::random([co, c, 3, 3], Distribution::Normal(0., 1.), &dev);
    let opts = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    let cols = Tensor::<B, 3>::random([n, k, p], Distribution::Normal(0., 1.), &dev);
    let cols_knp = Tensor::<B, 2>::random([k, n * p], Distribution::Normal(0., 1.), &dev);
    let dy = Tensor::<B, 3>::random([n, co, p], Distribution::Normal(0., 1.), &dev);
    let dy2 = Tensor::<B, 2>::random([co, n * p], Distribution::Normal(0., 1.), &dev);
    let w3 = w.clone().reshape([1, co, k]);
    let w2 = w.clone().reshape([co, k]);
    let label = format!("{n}x{c}x{hw}x{hw} -> {co}");
    let r = |op: &str, f: &mut dyn FnMut()| row(name, op, &label, t1(f));
    r("parts: stock conv2d fwd", &mut || {
        let _ = burn::tensor::module::conv2d(x.clone(), w.clone(), None, opts.clone());
    });
    r("parts: fast conv2d fwd (inner)", &mut || {
        let _ = ops::conv2d(x.clone(), w.clone(), None, opts.clone());
    });
    r("parts: into_data+from_data of cols", &mut || {
        let d = cols.clone().into_data();
        let _ = Tensor::<B, 3>::from_data(d, &dev);
    });
    r("parts: W[1,CO,K] @ cols[N,K,P]", &mut || {
        let _ = w3.clone().matmul(cols.clone());
    });
    r("parts: W[CO,K] @ cols[K,NP]", &mut || {
        let _ = w2.clone().matmul(cols_knp.clone());
    });
    r("parts: Wt @ dY[N,CO,P]", &mut || {
        let _ = w3.clone().swap_dims(1, 2).matmul(dy.clone());
    });
    r("parts: Wt @ dY[CO,NP]", &mut || {
        let _ = w2.clone().transpose().matmul(dy2.clone());
    });
    r("parts: dY[N] @ cols[N]^T, sum", &mut || {
        let _ = dy.clone().matmul(cols.clone().swap_dims(1, 2)).sum_dim(0);
    });
    r("parts: dY[CO,NP] @ cols[K,NP]^T", &mut || {
        let _ = dy2.clone().matmul(cols_knp.clone().transpose());
    });
    r("parts: dY [N,CO,P] -> [CO,NP] copy", &mut || {
        let _ = dy.clone().swap_dims(0, 1).reshape([co, n * p]);
    });
    r("parts: cols [N,K,P] -> [NP,K] copy", &mut || {
        let _ = cols.clone().swap_dims(1, 2).reshape([n * p, k]);
    });
}

fn run<B: Backend>(name: &str, cfg: &Cfg) {
    if cfg.only.as_deref() == Some("parts") {
        bench_parts::<B>(name, cfg);
        return;
    }
    println!(
        "\n{name}: fast conv path: {}",
        ops::has_fast_conv::<Ad<B>>()
    );
    if cfg.only.as_deref() != Some("step") {
        bench_ops::<B>(name, cfg);
    }
    if cfg.only.as_deref() != Some("ops") {
        bench_step::<B>(name, cfg);
    }
}

fn main() {
    let cfg = parse();
    // The same heap policy as `edgessl` itself, so allocation costs match a training run.
    edgessl::runtime::set_heap_policy(edgessl::runtime::HeapPolicy::Retain);
    for b in cfg.backends.clone() {
        match b.as_str() {
            #[cfg(feature = "flex")]
            "flex" => run::<burn::backend::Flex>("flex", &cfg),
            #[cfg(feature = "ndarray")]
            "ndarray" => run::<burn::backend::NdArray>("ndarray", &cfg),
            #[cfg(feature = "candle")]
            #[allow(deprecated)]
            "candle" => run::<burn::backend::Candle>("candle", &cfg),
            other => eprintln!("backend {other} not compiled in"),
        }
    }
}
