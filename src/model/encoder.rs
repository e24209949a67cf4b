//! Trunk + projector: the part of the online network that the target network mirrors.

use super::config::ModelConfig;
use super::head::{MlpHead, MlpHeadConfig};
use super::trunk::ResidualTrunk;
use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};

/// The encoder: images → trunk features → projector outputs.
#[derive(Module, Debug)]
pub struct Encoder<B: Backend> {
    /// The trunk that gets exported.
    pub trunk: ResidualTrunk<B>,
    /// Projector head (`z`, the predictor's input and the target).
    pub projector: MlpHead<B>,
}

impl<B: Backend> Encoder<B> {
    /// Build from a validated model config.
    pub fn new(config: &ModelConfig, device: &B::Device) -> Self {
        let trunk = config.trunk_config();
        let projector =
            MlpHeadConfig::new(trunk.out_dim(), config.projector_hidden, config.dim).init(device);
        Self {
            trunk: trunk.init(device),
            projector,
        }
    }

    /// Projector outputs `[N, dim]` of images `[N, C, H, W]`.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        self.projector.forward(self.trunk.forward(images))
    }
}
