//! DirectCopy (Wang et al. 2021): Wp = F / ‖F‖_F + εI, no eigendecomposition.

use super::correlation::CorrelationEstimate;
use super::error::SslError;
use super::set_from_correlation::CorrelationToPredictor;

/// `Wp = F / ‖F‖_F + ε I` (just `ε I` while F is zero).
#[derive(Debug, Clone)]
pub struct DirectCopy {
    /// ε on the diagonal.
    pub eps: f64,
    /// Set Wp every `freq` steps.
    pub freq: u64,
}

impl CorrelationToPredictor for DirectCopy {
    fn predictor_from(&self, correlation: &CorrelationEstimate) -> Result<Vec<f64>, SslError> {
        let d = correlation.dim;
        let norm = correlation.frobenius();
        let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
        let mut wp: Vec<f64> = correlation.matrix.iter().map(|v| v * scale).collect();
        for i in 0..d {
            wp[i * d + i] += self.eps;
        }
        Ok(wp)
    }

    fn freq(&self) -> u64 {
        self.freq
    }
}
