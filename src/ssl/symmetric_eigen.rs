//! Symmetric eigendecomposition of F (faer, f64): `F = Q diag(D) Qᵀ`.

use super::error::SslError;

/// Eigenvalues (ascending) and orthonormal eigenvectors of a symmetric matrix.
#[derive(Debug, Clone)]
pub struct SymmetricEigen {
    /// Matrix size.
    pub dim: usize,
    /// Eigenvalues in nondecreasing order.
    pub values: Vec<f64>,
    /// Row-major `dim x dim`; column `j` is the eigenvector of `values[j]`.
    pub vectors: Vec<f64>,
}

impl SymmetricEigen {
    /// Decompose the symmetric row-major `dim x dim` matrix `matrix` (its lower triangle is read).
    pub fn new(matrix: &[f64], dim: usize) -> Result<Self, SslError> {
        let fail = |reason: String| SslError::Eigen { dim, reason };
        if matrix.len() != dim * dim {
            return Err(fail(format!(
                "expected {} entries, got {}",
                dim * dim,
                matrix.len()
            )));
        }
        if matrix.iter().any(|v| !v.is_finite()) {
            return Err(fail("the matrix has non-finite entries".into()));
        }
        let a = faer::Mat::<f64>::from_fn(dim, dim, |i, j| matrix[i * dim + j]);
        let evd = a
            .self_adjoint_eigen(faer::Side::Lower)
            .map_err(|e| fail(format!("{e:?}")))?;
        let s = evd.S().column_vector();
        let u = evd.U();
        let values = (0..dim).map(|j| s[j]).collect();
        let mut vectors = vec![0.0; dim * dim];
        for i in 0..dim {
            for j in 0..dim {
                vectors[i * dim + j] = u[(i, j)];
            }
        }
        Ok(Self {
            dim,
            values,
            vectors,
        })
    }

    /// `Q diag(g(D)) Qᵀ` for a function `g` of the eigenvalues, row-major.
    pub fn reconstruct_with(&self, g: impl Fn(f64) -> f64) -> Vec<f64> {
        let d = self.dim;
        let scaled: Vec<f64> = self.values.iter().map(|&v| g(v)).collect();
        let mut out = vec![0.0; d * d];
        for i in 0..d {
            for (k, &sk) in scaled.iter().enumerate() {
                let qik = self.vectors[i * d + k] * sk;
                if qik == 0.0 {
                    continue;
                }
                let row = &mut out[i * d..(i + 1) * d];
                for (j, r) in row.iter_mut().enumerate() {
                    *r += qik * self.vectors[j * d + k];
                }
            }
        }
        out
    }
}
