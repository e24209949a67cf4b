//! The raw-pixel baseline: flattened, normalised images as features. A learned encoder is only
//! worth its compute if it beats this (on Fashion-MNIST the reference run needs more than one
//! epoch of pretraining to do so).

use super::features::EvalError;
use crate::data::Frame;

/// Flattens each frame to `height·width·channels` values `(x/255 − mean[c]) / std[c]`, in the
/// frame's own HWC order (kNN and the probe do not care about the order, only its consistency).
///
/// `mean` and `std` hold one value per channel. Returns the row-major features and their width.
/// All frames must share one geometry.
pub fn raw_pixel_features(
    frames: &[Frame],
    mean: &[f32],
    std: &[f32],
) -> Result<(Vec<f32>, usize), EvalError> {
    let first = frames
        .first()
        .ok_or_else(|| EvalError::Shape("raw baseline: no frames".into()))?;
    let c = first.channels;
    if mean.len() != c || std.len() != c {
        return Err(EvalError::Invalid(format!(
            "raw baseline: {c}-channel frames need {c} means and stds, got {} and {}",
            mean.len(),
            std.len()
        )));
    }
    if let Some(s) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(EvalError::Invalid(format!(
            "raw baseline: std {s} must be positive"
        )));
    }
    let dim = first.byte_len();
    let mut out = Vec::with_capacity(frames.len() * dim);
    for (i, f) in frames.iter().enumerate() {
        if (f.width, f.height, f.channels) != (first.width, first.height, c)
            || f.pixels.len() != dim
        {
            return Err(EvalError::Shape(format!(
                "raw baseline: frame {i} is {}x{}x{} ({} bytes), expected {}x{}x{c}",
                f.width,
                f.height,
                f.channels,
                f.pixels.len(),
                first.width,
                first.height
            )));
        }
        out.extend(
            f.pixels
                .iter()
                .enumerate()
                .map(|(k, &p)| (p as f32 / 255.0 - mean[k % c]) / std[k % c]),
        );
    }
    Ok((out, dim))
}

/// The labels of labelled frames; an unlabelled frame is an error naming its index.
pub fn frame_labels(frames: &[Frame]) -> Result<Vec<u32>, EvalError> {
    frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            f.label
                .ok_or_else(|| EvalError::Invalid(format!("frame {i} has no class label")))
        })
        .collect()
}
