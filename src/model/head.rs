//! The MLP head used as projector and as BYOL's predictor: Linear → BN(affine off) → ReLU → Linear.

use super::norm::{BatchNorm, BatchNormConfig};
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Tensor, backend::Backend};

/// Builds an [`MlpHead`].
#[derive(Config, Debug)]
pub struct MlpHeadConfig {
    /// Input width.
    pub d_input: usize,
    /// Hidden width.
    pub d_hidden: usize,
    /// Output width.
    pub d_output: usize,
}

/// Two linear layers with a non-affine BatchNorm and ReLU between them.
#[derive(Module, Debug)]
pub struct MlpHead<B: Backend> {
    /// First layer.
    pub fc1: Linear<B>,
    /// Non-affine norm on the hidden layer (as in the BYOL/DirectPred reference code).
    pub bn: BatchNorm<B>,
    /// Output layer.
    pub fc2: Linear<B>,
}

impl MlpHeadConfig {
    /// Initialise the head.
    pub fn init<B: Backend>(&self, device: &B::Device) -> MlpHead<B> {
        MlpHead {
            fc1: LinearConfig::new(self.d_input, self.d_hidden).init(device),
            bn: BatchNormConfig::new(self.d_hidden)
                .with_affine(false)
                .init(device),
            fc2: LinearConfig::new(self.d_hidden, self.d_output).init(device),
        }
    }
}

impl<B: Backend> MlpHead<B> {
    /// Apply the head to `[N, d_input]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.fc2
            .forward(relu(self.bn.forward2(self.fc1.forward(x))))
    }
}
