//! The paper's linear-evaluation protocol on precomputed frozen features: standardise with the
//! training split's mean and std, then train one linear layer (d → classes, with bias) with
//! softmax cross-entropy and Adam (lr 3e-4, weight decay 1e-3 as PyTorch's coupled L2, batch 128).
//!
//! Plain Rust: the model is tiny (128×10), so the cost is streaming the features. Each batch's
//! gradient is split into fixed sub-batches computed in parallel and summed in a fixed order,
//! so results do not depend on the number of threads.

use super::features::{EvalError, LabeledFeatures, dot};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;

/// Linear-probe options.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// Passes over the training features.
    pub epochs: usize,
    /// Adam learning rate.
    pub lr: f32,
    /// L2 weight decay added to the gradient (PyTorch `Adam(weight_decay=…)`), weights and bias.
    pub weight_decay: f32,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Seed of the initialisation and the per-epoch shuffles.
    pub seed: u64,
    /// Number of classes; `None` = 1 + the largest label in either split.
    pub num_classes: Option<usize>,
}

impl Default for ProbeConfig {
    /// The paper's protocol: 50 epochs, Adam lr 3e-4, wd 1e-3, batch 128.
    fn default() -> Self {
        Self {
            epochs: 50,
            lr: 3e-4,
            weight_decay: 1e-3,
            batch_size: 128,
            seed: 0,
            num_classes: None,
        }
    }
}

/// Per-epoch measurements.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochStats {
    /// Epoch, from 1.
    pub epoch: usize,
    /// Mean training cross-entropy over the epoch (during training, as logged by PyTorch loops).
    pub train_loss: f64,
    /// Training accuracy over the epoch's batches.
    pub train_top1: f64,
    /// Test top-1 accuracy after the epoch.
    pub test_top1: f64,
}

/// Outcome of a probe run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProbeReport {
    /// Test top-1 after the last epoch, in [0, 1].
    pub final_top1: f64,
    /// Best test top-1 over the epochs (what many papers report), in [0, 1].
    pub best_top1: f64,
    /// Epoch (from 1) of `best_top1`.
    pub best_epoch: usize,
    /// One entry per epoch.
    pub curve: Vec<EpochStats>,
}

/// Per-feature mean and standard deviation of the training split.
#[derive(Debug, Clone, PartialEq)]
pub struct Standardizer {
    /// Mean of each feature.
    pub mean: Vec<f32>,
    /// Population std of each feature; constant features get 1 so they map to 0, not NaN.
    pub std: Vec<f32>,
}

impl Standardizer {
    /// Fits on `features` (accumulating in f64).
    pub fn fit(features: LabeledFeatures<'_>) -> Self {
        let d = features.dim();
        let n = features.len() as f64;
        let mut sum = vec![0.0f64; d];
        let mut sum_sq = vec![0.0f64; d];
        for row in features.data().chunks_exact(d) {
            for ((s, q), &v) in sum.iter_mut().zip(&mut sum_sq).zip(row) {
                *s += v as f64;
                *q += v as f64 * v as f64;
            }
        }
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let std = sum_sq
            .iter()
            .zip(&mean)
            .map(|(q, m)| {
                let var = (q / n - m * m).max(0.0);
                // Relative floor: a feature constant up to rounding is treated as constant.
                if var.sqrt() <= 1e-6 * (1.0 + m.abs()) {
                    1.0
                } else {
                    var.sqrt() as f32
                }
            })
            .collect();
        Self {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std,
        }
    }

    /// `(x − mean) / std` for every row of `data` (row-major, width = `mean.len()`).
    pub fn apply(&self, data: &[f32]) -> Vec<f32> {
        let d = self.mean.len();
        let mut out = data.to_vec();
        out.par_chunks_mut(d.max(1) * 256).for_each(|block| {
            for row in block.chunks_exact_mut(d) {
                for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                    *v = (*v - m) / s;
                }
            }
        });
        out
    }
}

/// Samples per parallel gradient work item.
const SUB_BATCH: usize = 32;

/// Trains the probe on `train` and evaluates it on `test` after every epoch. The standardiser
/// is fitted on `train` only (test statistics never leak into the model).
pub fn linear_probe(
    train: LabeledFeatures<'_>,
    test: LabeledFeatures<'_>,
    cfg: &ProbeConfig,
) -> Result<ProbeReport, EvalError> {
    if train.dim() != test.dim() {
        return Err(EvalError::Shape(format!(
            "train features have {} dims, test features {}",
            train.dim(),
            test.dim()
        )));
    }
    if cfg.epochs == 0 || cfg.batch_size == 0 {
        return Err(EvalError::Invalid(format!(
            "probe: epochs ({}) and batch size ({}) must be at least 1",
            cfg.epochs, cfg.batch_size
        )));
    }
    let lr_ok = cfg.lr.is_finite() && cfg.lr > 0.0;
    let wd_ok = cfg.weight_decay.is_finite() && cfg.weight_decay >= 0.0;
    if !(lr_ok && wd_ok) {
        return Err(EvalError::Invalid(format!(
            "probe: lr ({}) must be positive and weight decay ({}) non-negative",
            cfg.lr, cfg.weight_decay
        )));
    }
    let classes = LabeledFeatures::class_count(train, test, cfg.num_classes)?;
    let d = train.dim();
    let norm = Standardizer::fit(train);
    let xtr = norm.apply(train.data());
    let xte = norm.apply(test.data());

    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
    let mut model = Linear::init(d, classes, &mut rng);
    let mut adam = Adam::new(model.params.len(), cfg.lr, cfg.weight_decay);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut curve = Vec::with_capacity(cfg.epochs);

    for epoch in 1..=cfg.epochs {
        order.shuffle(&mut rng);
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        for batch in order.chunks(cfg.batch_size) {
            let parts: Vec<(Vec<f32>, f64, usize)> = batch
                .par_chunks(SUB_BATCH)
                .map(|idx| model.grad(&xtr, train.labels(), idx))
                .collect();
            let mut grad = vec![0.0f32; model.params.len()];
            for (g, loss, ok) in &parts {
                for (a, b) in grad.iter_mut().zip(g) {
                    *a += b;
                }
                loss_sum += loss;
                correct += ok;
            }
            let scale = 1.0 / batch.len() as f32;
            grad.iter_mut().for_each(|g| *g *= scale);
            adam.step(&mut model.params, &grad);
        }
        let test_top1 = model.accuracy(&xte, test.labels());
        curve.push(EpochStats {
            epoch,
            train_loss: loss_sum / train.len() as f64,
            train_top1: correct as f64 / train.len() as f64,
            test_top1,
        });
    }
    let best = curve.iter().copied().fold(
        curve[0],
        |b, e| if e.test_top1 > b.test_top1 { e } else { b },
    );
    Ok(ProbeReport {
        final_top1: curve[curve.len() - 1].test_top1,
        best_top1: best.test_top1,
        best_epoch: best.epoch,
        curve,
    })
}

/// Weights (`classes × d`, row-major) followed by the biases, in one vector so Adam sees one
/// parameter array.
struct Linear {
    d: usize,
    classes: usize,
    params: Vec<f32>,
}

impl Linear {
    /// PyTorch's `nn.Linear` default: weights and bias uniform in ±1/√d.
    fn init(d: usize, classes: usize, rng: &mut Xoshiro256PlusPlus) -> Self {
        use rand::Rng;
        let bound = 1.0 / (d as f32).sqrt();
        let params = (0..classes * (d + 1))
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        Self { d, classes, params }
    }

    fn logits(&self, x: &[f32], out: &mut [f32]) {
        let (w, b) = self.params.split_at(self.classes * self.d);
        for (c, o) in out.iter_mut().enumerate() {
            *o = dot(x, &w[c * self.d..(c + 1) * self.d]) + b[c];
        }
    }

    /// Summed (not averaged) cross-entropy gradient, summed loss and correct count over `idx`.
    fn grad(&self, x: &[f32], labels: &[u32], idx: &[usize]) -> (Vec<f32>, f64, usize) {
        let (d, c) = (self.d, self.classes);
        let mut g = vec![0.0f32; c * (d + 1)];
        let mut z = vec![0.0f32; c];
        let (mut loss, mut correct) = (0.0f64, 0usize);
        for &i in idx {
            let xi = &x[i * d..(i + 1) * d];
            self.logits(xi, &mut z);
            let y = labels[i] as usize;
            let argmax = argmax(&z);
            correct += usize::from(argmax == y);
            // Stable softmax: subtract the max logit.
            let m = z[argmax];
            let zy = z[y] - m;
            let mut total = 0.0f32;
            for v in z.iter_mut() {
                *v = (*v - m).exp();
                total += *v;
            }
            // log-sum-exp form: finite even when softmax(y) underflows to 0.
            loss += (total.ln() - zy) as f64;
            let (gw, gb) = g.split_at_mut(c * d);
            for k in 0..c {
                let coef = z[k] / total - if k == y { 1.0 } else { 0.0 };
                gb[k] += coef;
                for (gv, &xv) in gw[k * d..(k + 1) * d].iter_mut().zip(xi) {
                    *gv += coef * xv;
                }
            }
        }
        (g, loss, correct)
    }

    fn accuracy(&self, x: &[f32], labels: &[u32]) -> f64 {
        let correct: usize = labels
            .par_iter()
            .enumerate()
            .map_init(
                || vec![0.0f32; self.classes],
                |z, (i, &y)| {
                    self.logits(&x[i * self.d..(i + 1) * self.d], z);
                    usize::from(argmax(z) == y as usize)
                },
            )
            .sum();
        correct as f64 / labels.len() as f64
    }
}

/// Index of the largest value (first one on ties).
fn argmax(z: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in z.iter().enumerate() {
        if v > z[best] {
            best = i;
        }
    }
    best
}

/// PyTorch's Adam (β 0.9/0.999, ε 1e-8) with coupled L2 weight decay.
struct Adam {
    lr: f32,
    wd: f32,
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Adam {
    fn new(n: usize, lr: f32, wd: f32) -> Self {
        Self {
            lr,
            wd,
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    fn step(&mut self, params: &mut [f32], grad: &[f32]) {
        const B1: f32 = 0.9;
        const B2: f32 = 0.999;
        self.t += 1;
        let c1 = 1.0 - B1.powi(self.t);
        let c2 = 1.0 - B2.powi(self.t);
        for (((p, &g), m), v) in params
            .iter_mut()
            .zip(grad)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            let g = g + self.wd * *p;
            *m = B1 * *m + (1.0 - B1) * g;
            *v = B2 * *v + (1.0 - B2) * g * g;
            *p -= self.lr * (*m / c1) / ((*v / c2).sqrt() + 1e-8);
        }
    }
}
