//! Evaluation of frozen features: weighted kNN, the paper's linear probe, and the raw-pixel
//! baseline. Everything works on precomputed row-major `f32` features so it is independent of
//! the burn backend that produced them.

pub mod baseline;
pub mod features;
pub mod knn;
pub mod probe;

pub use baseline::{frame_labels, raw_pixel_features};
pub use features::{EvalError, LabeledFeatures};
pub use knn::{KnnConfig, KnnResult, knn_classify};
pub use probe::{EpochStats, ProbeConfig, ProbeReport, Standardizer, linear_probe};
