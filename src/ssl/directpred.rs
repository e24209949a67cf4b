//! DirectPred (Tian, Chen, Ganguli 2021): Wp from the eigendecomposition of F.

use super::correlation::CorrelationEstimate;
use super::error::SslError;
use super::set_from_correlation::CorrelationToPredictor;
use super::symmetric_eigen::SymmetricEigen;

/// Floor of the predictor's eigenvalues (as the reference code).
pub const MIN_EIGENVALUE: f64 = 1e-4;

/// `F = Q diag(D) Qᵀ`, `s = max(D, 0) / max(D)`, `p = max(sqrt(s) + ε, 1e-4)`,
/// `Wp = Q diag(p) Qᵀ`.
#[derive(Debug, Clone)]
pub struct DirectPred {
    /// ε added to the square-rooted, normalised eigenvalues.
    pub eps: f64,
    /// Set Wp every `freq` steps.
    pub freq: u64,
}

impl DirectPred {
    /// The predictor eigenvalue for an eigenvalue `d` of F whose largest eigenvalue is `max`.
    /// A collapsed F (`max <= 0`) gives `p = ε` in every direction instead of dividing by zero.
    pub fn eigenvalue(&self, d: f64, max: f64) -> f64 {
        let s = if max > 0.0 { d.max(0.0) / max } else { 0.0 };
        (s.sqrt() + self.eps).max(MIN_EIGENVALUE)
    }

    /// Wp for F given by its eigendecomposition.
    pub fn from_eigen(&self, eig: &SymmetricEigen) -> Vec<f64> {
        let max = eig.values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        eig.reconstruct_with(|d| self.eigenvalue(d, max))
    }
}

impl CorrelationToPredictor for DirectPred {
    fn predictor_from(&self, correlation: &CorrelationEstimate) -> Result<Vec<f64>, SslError> {
        let eig = SymmetricEigen::new(&correlation.matrix, correlation.dim)?;
        Ok(self.from_eigen(&eig))
    }

    fn freq(&self) -> u64 {
        self.freq
    }
}
