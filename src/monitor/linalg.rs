//! Small dense linear algebra on row-major `f64` slices, shared by the monitors and the
//! linear-dynamics simulator.
//!
//! The matrices involved are tiny (d ≤ a few hundred), so plain triple loops are fast enough;
//! only the symmetric eigendecomposition is delegated to `faer`, whose solver was ~3x faster than
//! nalgebra's on 128×128 (BURN_NOTES.md).

use super::MonitorError;

/// Checks that `a` holds `rows * cols` values; `what` names the argument in the error.
pub fn check_shape(a: &[f64], rows: usize, cols: usize, what: &str) -> Result<(), MonitorError> {
    if rows == 0 || cols == 0 {
        return Err(MonitorError::Shape(format!(
            "{what}: empty ({rows}x{cols})"
        )));
    }
    if a.len() != rows * cols {
        return Err(MonitorError::Shape(format!(
            "{what}: expected {rows}x{cols} = {} values, got {}",
            rows * cols,
            a.len()
        )));
    }
    if a.iter().any(|v| !v.is_finite()) {
        return Err(MonitorError::NonFinite(what.to_string()));
    }
    Ok(())
}

/// `a (m×k) · b (k×n)` → `m×n`, all row-major.
pub fn matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    debug_assert_eq!(a.len(), m * k);
    debug_assert_eq!(b.len(), k * n);
    let mut c = vec![0.0; m * n];
    // i-k-j order: the inner loop walks rows of `b` and `c` contiguously.
    for i in 0..m {
        let c_row = &mut c[i * n..(i + 1) * n];
        for (p, &aip) in a[i * k..(i + 1) * k].iter().enumerate() {
            if aip == 0.0 {
                continue;
            }
            for (cij, &bpj) in c_row.iter_mut().zip(&b[p * n..(p + 1) * n]) {
                *cij += aip * bpj;
            }
        }
    }
    c
}

/// Transpose of a row-major `rows×cols` matrix.
pub fn transpose(a: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut t = vec![0.0; rows * cols];
    for i in 0..rows {
        for j in 0..cols {
            t[j * rows + i] = a[i * cols + j];
        }
    }
    t
}

/// Frobenius norm.
pub fn frobenius(a: &[f64]) -> f64 {
    a.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// `a − b`, elementwise.
pub fn sub(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x - y).collect()
}

/// The commutator `[a, b] = ab − ba` of two `n×n` matrices.
pub fn commutator(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    sub(&matmul(a, b, n, n, n), &matmul(b, a, n, n, n))
}

/// `n×n` identity.
pub fn identity(n: usize) -> Vec<f64> {
    let mut m = vec![0.0; n * n];
    for i in 0..n {
        m[i * n + i] = 1.0;
    }
    m
}

/// Eigendecomposition of a symmetric matrix, eigenvalues in *descending* order.
#[derive(Debug, Clone)]
pub struct SymEig {
    /// Matrix size.
    pub n: usize,
    /// Eigenvalues, largest first.
    pub values: Vec<f64>,
    /// Eigenvectors as a row-major `n×n` matrix whose column `j` belongs to `values[j]`.
    pub vectors: Vec<f64>,
}

impl SymEig {
    /// The unit eigenvector of the `j`-th largest eigenvalue.
    pub fn vector(&self, j: usize) -> Vec<f64> {
        (0..self.n).map(|i| self.vectors[i * self.n + j]).collect()
    }

    /// Rebuilds `Q diag(p) Qᵀ` from these eigenvectors and new eigenvalues `p`.
    pub fn reconstruct(&self, p: &[f64]) -> Vec<f64> {
        let n = self.n;
        let mut out = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                let mut acc = 0.0;
                for (k, &pk) in p.iter().enumerate() {
                    acc += self.vectors[i * n + k] * pk * self.vectors[j * n + k];
                }
                out[i * n + j] = acc;
            }
        }
        out
    }
}

/// Symmetric eigendecomposition of the row-major `n×n` matrix `a`.
///
/// Only the lower triangle is read after symmetrising `(a + aᵀ)/2`, so a running average that
/// drifted slightly from symmetry by rounding still gives real eigenpairs.
pub fn sym_eig(a: &[f64], n: usize) -> Result<SymEig, MonitorError> {
    check_shape(a, n, n, "symmetric matrix")?;
    let m = faer::Mat::<f64>::from_fn(n, n, |i, j| 0.5 * (a[i * n + j] + a[j * n + i]));
    let evd = m
        .self_adjoint_eigen(faer::Side::Lower)
        .map_err(|e| MonitorError::Eigen(format!("{e:?}")))?;
    let (u, s) = (evd.U(), evd.S().column_vector());
    // faer sorts ascending; report descending so index 0 is the leading mode.
    let mut values = Vec::with_capacity(n);
    let mut vectors = vec![0.0; n * n];
    for (dst, src) in (0..n).rev().enumerate() {
        values.push(s[src]);
        for i in 0..n {
            vectors[i * n + dst] = u[(i, src)];
        }
    }
    Ok(SymEig { n, values, vectors })
}
