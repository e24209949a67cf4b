//! The sgemm roof: GFLOP/s of a large f32 matrix product on the backend and threads the
//! training runs with. Convolutions are lowered to GEMMs (im2col), so this is the ceiling a
//! training step could approach; the achieved fraction says how much time goes elsewhere.

use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// One roof measurement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Roof {
    /// Matrix size (`n x n` times `n x n`).
    pub n: usize,
    /// Best seconds of one product over the repetitions.
    pub best_secs: f64,
    /// `2 n³ / best_secs / 1e9`.
    pub gflops: f64,
}

/// Time `reps` products of two random `n x n` f32 matrices (after one warm-up) on `B` and
/// keep the best, which is the least disturbed by other load on a shared machine.
pub fn sgemm_roof<B: Backend>(n: usize, reps: usize, device: &B::Device) -> Roof {
    let a = Tensor::<B, 2>::random([n, n], Distribution::Default, device);
    let b = Tensor::<B, 2>::random([n, n], Distribution::Default, device);
    let run = || {
        let c = a.clone().matmul(b.clone());
        // Read one value back so lazy or asynchronous backends finish the product.
        let _ = c.slice([0..1, 0..1]).into_data();
    };
    run();
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        run();
        best = best.min(t.elapsed().as_secs_f64());
    }
    let flops = 2.0 * (n as f64).powi(3);
    Roof {
        n,
        best_secs: best,
        gflops: flops / best / 1e9,
    }
}
