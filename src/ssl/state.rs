//! The learner's complete state as plain bytes, for checkpoints and exact resume.

use super::correlation::CorrelationEstimate;
use burn::record::{FullPrecisionSettings, Record};
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

/// Everything that a step depends on: both networks (BatchNorm statistics included), both
/// optimisers' momentum buffers, F and the step count. Records are stored as postcard bytes
/// of burn's full-precision record items, so this struct is backend-independent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearnerState {
    /// Steps taken.
    pub step: u64,
    /// The online network (encoder + predictor).
    pub online: Vec<u8>,
    /// The EMA target encoder, if the method keeps one.
    pub target: Option<Vec<u8>>,
    /// Momentum buffers of the encoder's optimiser.
    pub encoder_optim: Vec<u8>,
    /// Momentum buffers of the predictor's optimiser.
    pub predictor_optim: Vec<u8>,
    /// The running correlation F.
    pub correlation: CorrelationEstimate,
}

/// Serialise a burn record.
pub fn record_bytes<B: Backend, R: Record<B>>(record: R) -> Vec<u8> {
    let item = record.into_item::<FullPrecisionSettings>();
    postcard::to_allocvec(&item).expect("burn record items serialise")
}

/// Deserialise a burn record; `what` names it in the error.
pub fn record_from_bytes<B: Backend, R: Record<B>>(
    bytes: &[u8],
    what: &str,
    device: &B::Device,
) -> Result<R, String> {
    let item: R::Item<FullPrecisionSettings> =
        postcard::from_bytes(bytes).map_err(|e| format!("{what}: cannot decode ({e})"))?;
    Ok(R::from_item::<FullPrecisionSettings>(item, device))
}
