//! The running estimate of the predictor-input correlation `F = E[f fᵀ]`.

use serde::{Deserialize, Serialize};

/// `F ← d` on the first update, then `F ← ρ F + (1 − ρ) d`, with `d = ZᵀZ / n` the uncentred
/// correlation of a batch of projector outputs `Z` (`n x dim`, both views together).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorrelationEstimate {
    /// Feature dimension.
    pub dim: usize,
    /// EMA factor ρ.
    pub rho: f64,
    /// Number of batches folded in so far.
    pub updates: u64,
    /// Row-major `dim x dim`, symmetric.
    pub matrix: Vec<f64>,
}

impl CorrelationEstimate {
    /// An empty estimate (no batch seen).
    pub fn new(dim: usize, rho: f64) -> Self {
        Self {
            dim,
            rho,
            updates: 0,
            matrix: vec![0.0; dim * dim],
        }
    }

    /// Fold in a batch `z` of `n` rows (row-major `n x dim`). Accumulates in f64, one row at a
    /// time into the upper triangle: never materialises an `(n, d, d)` tensor.
    pub fn update(&mut self, z: &[f32], n: usize) {
        let d = self.dim;
        assert_eq!(z.len(), n * d, "correlation update: z has the wrong length");
        let mut batch = vec![0.0f64; d * d];
        let mut row = vec![0.0f64; d];
        for r in 0..n {
            for (dst, &src) in row.iter_mut().zip(&z[r * d..(r + 1) * d]) {
                *dst = src as f64;
            }
            for i in 0..d {
                let zi = row[i];
                let out = &mut batch[i * d + i..(i + 1) * d];
                for (o, &zj) in out.iter_mut().zip(&row[i..]) {
                    *o += zi * zj;
                }
            }
        }
        let inv_n = 1.0 / n.max(1) as f64;
        let (keep, new) = if self.updates == 0 {
            (0.0, 1.0)
        } else {
            (self.rho, 1.0 - self.rho)
        };
        for i in 0..d {
            for j in i..d {
                let v = keep * self.matrix[i * d + j] + new * batch[i * d + j] * inv_n;
                self.matrix[i * d + j] = v;
                self.matrix[j * d + i] = v;
            }
        }
        self.updates += 1;
    }

    /// Frobenius norm of F.
    pub fn frobenius(&self) -> f64 {
        self.matrix.iter().map(|v| v * v).sum::<f64>().sqrt()
    }

    /// Whether every entry is finite.
    pub fn is_finite(&self) -> bool {
        self.matrix.iter().all(|v| v.is_finite())
    }
}
