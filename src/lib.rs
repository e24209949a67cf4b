//! edgessl: on-device non-contrastive self-supervised pretraining (BYOL, SimSiam, DirectPred,
//! DirectCopy) of compact image encoders, generic over burn backends.

pub mod data;
pub mod cli;
pub mod ops;
