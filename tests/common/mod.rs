//! Shared helpers of the integration tests.
#![allow(dead_code)]

use burn::backend::Autodiff;
use edgessl::data::ViewBatch;
use edgessl::data::synthetic::SyntheticViews;
use edgessl::model::ModelConfig;
use edgessl::ssl::{MethodConfig, OptimConfig};

/// The test backend: the crate's default (flex), or the first CPU backend compiled in.
#[cfg(feature = "flex")]
pub type B = Autodiff<burn::backend::Flex>;
/// The test backend: the crate's default (flex), or the first CPU backend compiled in.
#[cfg(all(not(feature = "flex"), feature = "ndarray"))]
pub type B = Autodiff<burn::backend::NdArray>;
/// The test backend: the crate's default (flex), or the first CPU backend compiled in.
#[cfg(all(not(feature = "flex"), not(feature = "ndarray"), feature = "candle"))]
#[allow(deprecated)] // burn-candle is deprecated upstream but still a supported backend here
pub type B = Autodiff<burn::backend::Candle>;

/// [`tiny_model`] as the CLI's shape flags, for tests that run the binary.
pub const TINY_MODEL_FLAGS: &[&str] = &[
    "--width",
    "8",
    "--image-size",
    "12",
    "--in-channels",
    "1",
    "--dim",
    "16",
    "--projector-hidden",
    "32",
];

/// A tiny model so tests run in milliseconds per step.
pub fn tiny_model() -> ModelConfig {
    ModelConfig {
        width: 8,
        blocks: 1,
        in_channels: 1,
        image_size: 12,
        projector_hidden: 32,
        dim: 16,
        ..Default::default()
    }
}

/// A method config with the given predictor and the reference defaults otherwise.
pub fn method(predictor: edgessl::ssl::PredictorKind) -> MethodConfig {
    MethodConfig {
        predictor,
        predictor_hidden: 32,
        ..Default::default()
    }
}

/// SGD settings for the tiny tests.
pub fn optim() -> OptimConfig {
    OptimConfig {
        lr: 0.05,
        ..Default::default()
    }
}

/// A few batches of synthetic view pairs for the tiny model.
pub fn batches(n: usize, batch: usize, seed: u64) -> Vec<ViewBatch> {
    let m = tiny_model();
    let mut views = SyntheticViews::new(m.image_size, m.in_channels, batch, seed);
    (0..n).map(|_| views.next_views().unwrap()).collect()
}

/// Deterministic pseudo-random numbers in [-1, 1) (no RNG crate needed in tests).
pub fn lcg(seed: u64, n: usize) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

/// A random orthogonal matrix (row-major), by Gram-Schmidt on random vectors.
pub fn random_orthogonal(d: usize, seed: u64) -> Vec<f64> {
    let raw = lcg(seed, d * d);
    let mut q: Vec<Vec<f64>> = Vec::with_capacity(d);
    for c in 0..d {
        let mut v: Vec<f64> = (0..d).map(|r| raw[r * d + c]).collect();
        for u in &q {
            let dot: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(u).for_each(|(a, b)| *a -= dot * b);
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        v.iter_mut().for_each(|a| *a /= norm);
        q.push(v);
    }
    // Column c of the result is q[c].
    let mut out = vec![0.0; d * d];
    for (c, col) in q.iter().enumerate() {
        for r in 0..d {
            out[r * d + c] = col[r];
        }
    }
    out
}

/// `Q diag(values) Qᵀ`, computed directly.
pub fn compose(q: &[f64], values: &[f64]) -> Vec<f64> {
    let d = values.len();
    let mut out = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..d {
            out[i * d + j] = (0..d)
                .map(|k| q[i * d + k] * values[k] * q[j * d + k])
                .sum();
        }
    }
    out
}

/// Largest absolute difference.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}
