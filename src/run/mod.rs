//! A pretraining run as a user meets it: checkpoints, the encoder export, features and
//! evaluation of a trained trunk.

pub mod checkpoint;
pub mod encoder;
pub mod evaluate;
pub mod features;
pub mod summary;

pub use checkpoint::RunCheckpoint;
pub use summary::TrainingSummary;
