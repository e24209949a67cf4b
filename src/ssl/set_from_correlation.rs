//! Predictors that are set from F rather than trained (DirectPred, DirectCopy).

use super::correlation::CorrelationEstimate;
use super::error::SslError;
use super::predictor::{PredictorNet, PredictorRule, set_linear_weight};
use burn::module::Module;
use burn::nn::LinearConfig;
use burn::tensor::backend::AutodiffBackend;

/// The map from F to Wp that distinguishes DirectPred from DirectCopy.
pub trait CorrelationToPredictor: Send + Sync {
    /// Wp (row-major `d x d`, math orientation) for the current F.
    fn predictor_from(&self, correlation: &CorrelationEstimate) -> Result<Vec<f64>, SslError>;
    /// Set Wp every `freq()` steps.
    fn freq(&self) -> u64;
}

/// A linear predictor without bias whose weight is written every `freq` steps from F and
/// never trained: no gradient is kept for it and the optimiser has no state for it. Gradients
/// still flow through the fixed Wp into the online network.
#[derive(Debug, Clone)]
pub struct SetFromCorrelation<R>(pub R);

impl<B: AutodiffBackend, R: CorrelationToPredictor> PredictorRule<B> for SetFromCorrelation<R> {
    fn init(&self, dim: usize, device: &B::Device) -> Option<PredictorNet<B>> {
        // Until the first F is seen, Wp is the usual random init (as the reference code).
        let linear = LinearConfig::new(dim, dim)
            .with_bias(false)
            .init(device)
            .no_grad();
        Some(PredictorNet::Linear(linear))
    }

    fn trains(&self) -> bool {
        false
    }

    fn after_step(
        &self,
        step: u64,
        correlation: &CorrelationEstimate,
        predictor: Option<PredictorNet<B>>,
    ) -> Result<Option<PredictorNet<B>>, SslError> {
        if correlation.updates == 0 || !step.is_multiple_of(self.0.freq()) {
            return Ok(predictor);
        }
        if !correlation.is_finite() {
            return Err(SslError::NonFinite {
                step,
                what: "the correlation matrix F",
            });
        }
        match predictor {
            Some(PredictorNet::Linear(linear)) => {
                let wp = self.0.predictor_from(correlation)?;
                let linear = set_linear_weight(linear, &wp, correlation.dim);
                Ok(Some(PredictorNet::Linear(linear)))
            }
            other => Ok(other),
        }
    }
}
