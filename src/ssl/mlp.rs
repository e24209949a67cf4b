//! BYOL's predictor: a trained 2-layer MLP.

use super::predictor::{PredictorNet, PredictorRule};
use crate::model::MlpHeadConfig;
use burn::tensor::backend::AutodiffBackend;

/// Trained `Linear(d, hidden) → BN → ReLU → Linear(hidden, d)`.
#[derive(Debug, Clone)]
pub struct MlpPredictor {
    /// Hidden width.
    pub hidden: usize,
}

impl<B: AutodiffBackend> PredictorRule<B> for MlpPredictor {
    fn init(&self, dim: usize, device: &B::Device) -> Option<PredictorNet<B>> {
        Some(PredictorNet::Mlp(
            MlpHeadConfig::new(dim, self.hidden, dim).init(device),
        ))
    }

    fn trains(&self) -> bool {
        true
    }
}
