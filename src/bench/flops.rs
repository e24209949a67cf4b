//! Floating-point work of one training step, counted from layer shapes.
//!
//! Per view image, forward multiply-accumulates (MACs): the trunk's convolutions
//! ([`TrunkConfig::macs`](crate::model::TrunkConfig::macs)), the projector's two linear layers,
//! and the predictor's. Training cost per frame (two views):
//!
//! `FLOPs = 2 views × 2 FLOP/MAC × (3 × online MACs + 1 × target MACs)`
//!
//! where backward ≈ 2 × forward (input and weight gradients), so the online network costs
//! 3 × its forward, and the target network (trunk + projector, no gradients) 1 × forward; it is
//! absent for SimSiam, whose target is the detached online output. BatchNorm, ReLU, pooling,
//! the loss, F and the eigendecomposition are left out (element-wise or O(d³) per step: small
//! next to the convolutions; `benches/eigen.rs` times the latter).
//!
//! That count is the direct convolutions' (the one PyTorch's rate uses too). Where 3x3
//! stride-1 convolutions run as Winograd F(2x2, 3x3), their forward and input gradient do
//! fewer multiplications: [`StepFlops::arithmetic_per_frame`] is the count with those.

use crate::model::ModelConfig;
use crate::ssl::{MethodConfig, PredictorKind};
use serde::{Deserialize, Serialize};

/// The forward MACs per view image and the resulting training FLOPs per frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepFlops {
    /// Trunk convolutions, per image.
    pub trunk_macs: u64,
    /// Projector, per image.
    pub projector_macs: u64,
    /// Predictor, per image.
    pub predictor_macs: u64,
    /// Whether a separate target network runs a forward pass.
    pub target_forward: bool,
    /// Training FLOPs per frame (both views), by the formula in the module docs.
    pub flops_per_frame: f64,
    /// Trunk forward MACs per image that Winograd convolutions do not do
    /// ([`crate::model::TrunkConfig::winograd_saved_macs`]; 0 in results from before).
    #[serde(default)]
    pub winograd_saved_macs: u64,
}

impl StepFlops {
    /// Count for a model and method.
    pub fn new(model: &ModelConfig, method: &MethodConfig) -> Self {
        let trunk = model.trunk_config();
        let trunk_macs = trunk.macs(model.image_size, model.image_size);
        let (feat, hid, d) = (
            trunk.out_dim() as u64,
            model.projector_hidden as u64,
            model.dim as u64,
        );
        let projector_macs = feat * hid + hid * d;
        let predictor_macs = match method.predictor {
            PredictorKind::Mlp => 2 * d * method.predictor_hidden as u64,
            PredictorKind::Linear | PredictorKind::Directpred | PredictorKind::Directcopy => d * d,
            PredictorKind::None => 0,
        };
        let target_forward = method.stop_gradient && method.momentum > 0.0;
        let online = (trunk_macs + projector_macs + predictor_macs) as f64;
        let target = if target_forward {
            (trunk_macs + projector_macs) as f64
        } else {
            0.0
        };
        let flops_per_frame = 2.0 * 2.0 * (3.0 * online + target);
        Self {
            trunk_macs,
            projector_macs,
            predictor_macs,
            target_forward,
            flops_per_frame,
            winograd_saved_macs: trunk.winograd_saved_macs(model.image_size, model.image_size),
        }
    }

    /// The FLOPs per frame actually multiplied and added: [`Self::flops_per_frame`] less what
    /// Winograd convolutions save in the online forward and input gradient and in the target
    /// forward.
    pub fn arithmetic_per_frame(&self) -> f64 {
        let passes = 2.0 + f64::from(u8::from(self.target_forward));
        self.flops_per_frame - 2.0 * 2.0 * passes * self.winograd_saved_macs as f64
    }
}
