//! The predictor: a module on the online side, and the rule that produces it.

use super::correlation::CorrelationEstimate;
use super::error::SslError;
use crate::model::MlpHead;
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};

/// The predictor network; `None` in the online network means identity.
// One value per network, so the size difference of the variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum PredictorNet<B: Backend> {
    /// BYOL's 2-layer MLP.
    Mlp(MlpHead<B>),
    /// A linear map without bias (trained, or set by DirectPred/DirectCopy).
    Linear(Linear<B>),
}

impl<B: Backend> PredictorNet<B> {
    /// `p = Wp z` for a batch of rows `z`.
    pub fn forward(&self, z: Tensor<B, 2>) -> Tensor<B, 2> {
        match self {
            Self::Mlp(head) => head.forward(z),
            Self::Linear(linear) => linear.forward(z),
        }
    }

    /// Wp in the math orientation (`p = Wp f`), row-major f64, for a linear predictor.
    pub fn linear_matrix(&self) -> Option<Vec<f64>> {
        let Self::Linear(linear) = self else {
            return None;
        };
        // burn stores the weight as [d_in, d_out] (y = x W), i.e. Wpᵀ.
        let w = linear.weight.val().transpose();
        let data = w.into_data().convert::<f64>();
        data.to_vec::<f64>().ok()
    }
}

/// Replace the weight of a linear predictor by `wp` (math orientation, row-major `d x d`),
/// keeping its parameter id and leaving it out of autodiff.
pub fn set_linear_weight<B: Backend>(linear: Linear<B>, wp: &[f64], dim: usize) -> Linear<B> {
    let device = linear.weight.device();
    // Stored transposed: weight[i][j] = Wp[j][i].
    let mut values = vec![0f32; dim * dim];
    for i in 0..dim {
        for j in 0..dim {
            values[i * dim + j] = wp[j * dim + i] as f32;
        }
    }
    let tensor = Tensor::<B, 2>::from_data(TensorData::new(values, [dim, dim]), &device);
    Linear {
        weight: linear.weight.map(|_| tensor.set_require_grad(false)),
        bias: linear.bias,
    }
}

/// How a method produces its predictor. One implementation per predictor kind.
pub trait PredictorRule<B: AutodiffBackend>: Send {
    /// The predictor of a freshly initialised network (`None` = identity).
    fn init(&self, dim: usize, device: &B::Device) -> Option<PredictorNet<B>>;

    /// Whether the optimiser trains the predictor's weights (false: no gradients are kept
    /// for them and the optimiser holds no state for them).
    fn trains(&self) -> bool;

    /// Called after the optimiser step `step` (0-based) with the current F; may set Wp.
    fn after_step(
        &self,
        step: u64,
        correlation: &CorrelationEstimate,
        predictor: Option<PredictorNet<B>>,
    ) -> Result<Option<PredictorNet<B>>, SslError> {
        let _ = (step, correlation);
        Ok(predictor)
    }
}
