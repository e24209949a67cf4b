//! Collapse indicators: the per-dimension spread of normalised embeddings (SimSiam paper,
//! Sec. 4: ≈ 1/√d for healthy outputs, 0 for collapse) and the effective rank of F.

use super::MonitorError;
use super::linalg::sym_eig;

/// Mean over dimensions of the standard deviation of the ℓ2-normalised rows of `outputs`
/// (`n×d`, row-major), times `√d`. About 1 for isotropic outputs, 0 when every sample maps to
/// the same direction (complete collapse).
///
/// Rows of zero norm are left at zero rather than divided by zero. Accumulates in f64 so that
/// 60k×128 outputs do not lose precision.
pub fn collapse_std(outputs: &[f32], n: usize, d: usize) -> Result<f64, MonitorError> {
    if n < 2 || d == 0 {
        return Err(MonitorError::Shape(format!(
            "collapse_std needs at least 2 rows and 1 column, got {n}x{d}"
        )));
    }
    if outputs.len() != n * d {
        return Err(MonitorError::Shape(format!(
            "outputs: expected {n}x{d} = {} values, got {}",
            n * d,
            outputs.len()
        )));
    }
    if outputs.iter().any(|v| !v.is_finite()) {
        return Err(MonitorError::NonFinite("projector outputs".into()));
    }
    let mut sum = vec![0.0f64; d];
    let mut sum_sq = vec![0.0f64; d];
    for row in outputs.chunks_exact(d) {
        let norm = row
            .iter()
            .map(|&v| (v as f64) * (v as f64))
            .sum::<f64>()
            .sqrt();
        let inv = if norm > 0.0 { 1.0 / norm } else { 0.0 };
        for ((s, q), &v) in sum.iter_mut().zip(sum_sq.iter_mut()).zip(row) {
            let z = v as f64 * inv;
            *s += z;
            *q += z * z;
        }
    }
    let nf = n as f64;
    let mean_std = sum
        .iter()
        .zip(&sum_sq)
        .map(|(s, q)| {
            let mean = s / nf;
            // Unbiased variance, clamped: rounding can make it slightly negative at collapse.
            ((q - nf * mean * mean) / (nf - 1.0)).max(0.0).sqrt()
        })
        .sum::<f64>()
        / d as f64;
    Ok(mean_std * (d as f64).sqrt())
}

/// Effective rank `exp(H(p))` of a spectrum, `p_i = λ_i / Σλ` over the non-negative eigenvalues
/// (Roy & Vetterli 2007). `d` for a flat spectrum, 1 for rank one, 0 for an all-zero spectrum.
pub fn effective_rank(eigenvalues: &[f64]) -> f64 {
    let total: f64 = eigenvalues.iter().filter(|v| **v > 0.0).sum();
    if total <= 0.0 || !total.is_finite() {
        return 0.0;
    }
    let entropy: f64 = eigenvalues
        .iter()
        .filter(|v| **v > 0.0)
        .map(|v| {
            let p = v / total;
            -p * p.ln()
        })
        .sum();
    entropy.exp()
}

/// Effective rank of the symmetric `d×d` matrix `f` (row-major).
pub fn effective_rank_of(f: &[f64], d: usize) -> Result<f64, MonitorError> {
    Ok(effective_rank(&sym_eig(f, d)?.values))
}
