//! One call for the trainer: everything the monitors measure at a logging step, ready to be
//! copied into a [`LogRecord`].

use super::alignment::{AlignmentReport, eigen_alignment};
use super::collapse::{collapse_std, effective_rank};
use super::linalg::{check_shape, sym_eig};
use super::{LogRecord, MonitorError};

/// Monitor values at one step.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorSnapshot {
    /// Alignment of Wp with F, when a linear predictor was given.
    pub alignment: Option<AlignmentReport>,
    /// Output spread, when projector outputs were given.
    pub collapse_std: Option<f64>,
    /// Effective rank of F.
    pub effective_rank: f64,
    /// Eigenvalues of F, largest first.
    pub f_eigenvalues: Vec<f64>,
}

impl MonitorSnapshot {
    /// Measures `f` (d×d), optionally `wp` (d×d, a linear predictor) over its `top_k` modes, and
    /// optionally the projector `outputs` (`n×d` f32, row-major, given as `(data, n)`).
    pub fn measure(
        f: &[f64],
        wp: Option<&[f64]>,
        d: usize,
        top_k: usize,
        outputs: Option<(&[f32], usize)>,
    ) -> Result<Self, MonitorError> {
        check_shape(f, d, d, "F")?;
        let alignment = wp.map(|wp| eigen_alignment(f, wp, d, top_k)).transpose()?;
        let f_eigenvalues = match &alignment {
            Some(a) => a.f_eigenvalues.clone(),
            None => sym_eig(f, d)?.values,
        };
        let collapse_std = outputs.map(|(z, n)| collapse_std(z, n, d)).transpose()?;
        Ok(Self {
            alignment,
            collapse_std,
            effective_rank: effective_rank(&f_eigenvalues),
            f_eigenvalues,
        })
    }

    /// Copies the measurements into `record`; `with_spectra` also stores the eigenvalue vectors
    /// (d values each; log them every few records to keep the file small).
    pub fn fill(&self, record: &mut LogRecord, with_spectra: bool) {
        record.effective_rank = Some(self.effective_rank);
        record.collapse_std = self.collapse_std;
        if let Some(a) = &self.alignment {
            record.alignment_mean = Some(a.mean);
            record.commutator = Some(a.commutator);
            record.asymmetry = Some(a.asymmetry);
        }
        if with_spectra {
            record.f_eigenvalues = Some(self.f_eigenvalues.clone());
            record.wp_eigenvalues = self.alignment.as_ref().map(|a| a.wp_eigenvalues.clone());
        }
    }
}

/// `F = ZᵀZ / n` in f64 from `n×d` outputs (no centring, as DirectPred's `d = mean f fᵀ`): for
/// methods that do not keep a running F themselves.
pub fn output_correlation(outputs: &[f32], n: usize, d: usize) -> Result<Vec<f64>, MonitorError> {
    if n == 0 || d == 0 || outputs.len() != n * d {
        return Err(MonitorError::Shape(format!(
            "outputs: expected {n}x{d} values, got {}",
            outputs.len()
        )));
    }
    let mut f = vec![0.0f64; d * d];
    for row in outputs.chunks_exact(d) {
        for (i, &zi) in row.iter().enumerate() {
            let zi = zi as f64;
            // Upper triangle only; mirrored below.
            for (j, &zj) in row.iter().enumerate().skip(i) {
                f[i * d + j] += zi * zj as f64;
            }
        }
    }
    let inv = 1.0 / n as f64;
    for i in 0..d {
        for j in i..d {
            let v = f[i * d + j] * inv;
            f[i * d + j] = v;
            f[j * d + i] = v;
        }
    }
    if f.iter().any(|v| !v.is_finite()) {
        return Err(MonitorError::NonFinite("outputs".into()));
    }
    Ok(f)
}
