//! No predictor (identity): the ablation that collapses (the paper's Theorem 2).

use super::predictor::{PredictorNet, PredictorRule};
use burn::tensor::backend::AutodiffBackend;

/// The identity predictor.
#[derive(Debug, Clone)]
pub struct NoPredictor;

impl<B: AutodiffBackend> PredictorRule<B> for NoPredictor {
    fn init(&self, _dim: usize, _device: &B::Device) -> Option<PredictorNet<B>> {
        None
    }

    fn trains(&self) -> bool {
        false
    }
}
