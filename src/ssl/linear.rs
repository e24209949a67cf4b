//! A trained linear predictor, optionally kept symmetric.

use super::correlation::CorrelationEstimate;
use super::error::SslError;
use super::predictor::{PredictorNet, PredictorRule};
use burn::nn::LinearConfig;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

/// Trained `d x d` predictor without bias. With `symmetric`, `Wp ← (Wp + Wpᵀ)/2` after every
/// step (the paper's symmetric-predictor setting).
#[derive(Debug, Clone)]
pub struct LinearPredictor {
    /// Symmetrise after every step.
    pub symmetric: bool,
}

impl<B: AutodiffBackend> PredictorRule<B> for LinearPredictor {
    fn init(&self, dim: usize, device: &B::Device) -> Option<PredictorNet<B>> {
        Some(PredictorNet::Linear(
            LinearConfig::new(dim, dim).with_bias(false).init(device),
        ))
    }

    fn trains(&self) -> bool {
        true
    }

    fn after_step(
        &self,
        _step: u64,
        _correlation: &CorrelationEstimate,
        predictor: Option<PredictorNet<B>>,
    ) -> Result<Option<PredictorNet<B>>, SslError> {
        match predictor {
            Some(PredictorNet::Linear(mut linear)) if self.symmetric => {
                linear.weight = linear.weight.map(|w| {
                    let w = w.inner();
                    let sym = (w.clone() + w.transpose()).mul_scalar(0.5);
                    Tensor::from_inner(sym).require_grad()
                });
                Ok(Some(PredictorNet::Linear(linear)))
            }
            other => Ok(other),
        }
    }
}
