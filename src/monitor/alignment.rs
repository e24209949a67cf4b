//! Eigenspace alignment between the predictor `Wp` and the correlation matrix `F`
//! (paper, Thm 3 and Fig. 4): once aligned, every eigenvector `u_j` of `F` is also an
//! eigenvector of `Wp`, so `cos(Wp u_j, u_j) → ±1` and the commutator `[F, Wp]` vanishes.

use super::MonitorError;
use super::linalg::{check_shape, commutator, frobenius, matmul, sym_eig, transpose};

/// Alignment of `Wp` with the top eigenvectors of `F` at one point of training.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlignmentReport {
    /// `cos(Wp u_j, u_j)` for the `k` leading eigenvectors of `F`, leading mode first
    /// (0 where `Wp u_j = 0`). Signed: a negative value means `Wp` flips that direction.
    pub per_mode: Vec<f64>,
    /// Mean of `per_mode`.
    pub mean: f64,
    /// `‖[F, Wp]‖_F / (‖F‖_F ‖Wp‖_F)`: scale-free, 0 when the eigenspaces coincide.
    pub commutator: f64,
    /// `‖Wp − Wpᵀ‖_F / ‖Wp‖_F`: 0 for a symmetric predictor (DirectPred's is by construction).
    pub asymmetry: f64,
    /// Eigenvalues of `F`, largest first (for spectra plots).
    pub f_eigenvalues: Vec<f64>,
    /// Eigenvalues of the symmetric part `(Wp + Wpᵀ)/2`, largest first (real even when `Wp` is
    /// not symmetric; equal to Wp's own eigenvalues for DirectPred).
    pub wp_eigenvalues: Vec<f64>,
}

/// Measures how well `wp` (d×d, row-major) is aligned with the eigenvectors of the symmetric
/// `f` (d×d, row-major), over its `top_k` leading modes (`top_k` is clamped to `d`).
pub fn eigen_alignment(
    f: &[f64],
    wp: &[f64],
    d: usize,
    top_k: usize,
) -> Result<AlignmentReport, MonitorError> {
    check_shape(f, d, d, "F")?;
    check_shape(wp, d, d, "Wp")?;
    if top_k == 0 {
        return Err(MonitorError::Invalid(
            "alignment: top_k must be at least 1".into(),
        ));
    }
    let eig = sym_eig(f, d)?;
    let k = top_k.min(d);
    // Wp·Q once, then column j of the product is Wp u_j.
    let wq = matmul(wp, &eig.vectors, d, d, d);
    let per_mode: Vec<f64> = (0..k)
        .map(|j| {
            let (mut dot, mut norm2) = (0.0, 0.0);
            for i in 0..d {
                let w = wq[i * d + j];
                dot += w * eig.vectors[i * d + j];
                norm2 += w * w;
            }
            // u_j is unit-length, so cos = <Wp u, u> / ‖Wp u‖.
            if norm2 > 0.0 { dot / norm2.sqrt() } else { 0.0 }
        })
        .collect();
    let mean = per_mode.iter().sum::<f64>() / k as f64;
    Ok(AlignmentReport {
        per_mode,
        mean,
        commutator: relative_commutator(f, wp, d)?,
        asymmetry: asymmetry(wp, d)?,
        f_eigenvalues: eig.values,
        // sym_eig symmetrises its input, which is exactly the symmetric part.
        wp_eigenvalues: sym_eig(wp, d)?.values,
    })
}

/// `‖[F, Wp]‖_F / (‖F‖_F ‖Wp‖_F)`, 0 when either matrix is zero.
pub fn relative_commutator(f: &[f64], wp: &[f64], d: usize) -> Result<f64, MonitorError> {
    check_shape(f, d, d, "F")?;
    check_shape(wp, d, d, "Wp")?;
    let denom = frobenius(f) * frobenius(wp);
    Ok(if denom > 0.0 {
        frobenius(&commutator(f, wp, d)) / denom
    } else {
        0.0
    })
}

/// `‖Wp − Wpᵀ‖_F / ‖Wp‖_F`, 0 for a zero matrix.
pub fn asymmetry(wp: &[f64], d: usize) -> Result<f64, MonitorError> {
    check_shape(wp, d, d, "Wp")?;
    let norm = frobenius(wp);
    if norm == 0.0 {
        return Ok(0.0);
    }
    let t = transpose(wp, d, d);
    let diff: f64 = wp.iter().zip(&t).map(|(a, b)| (a - b) * (a - b)).sum();
    Ok(diff.sqrt() / norm)
}
