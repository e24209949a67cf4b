//! Labelled evaluation images: un-augmented, resized to the trunk input and normalised like
//! the training views, for kNN and linear-probe evaluation. Plus a deterministic stratified
//! hold-out split, for choosing hyper-parameters on part of the training set without ever
//! looking at the test set.

use super::augment::AugmentConfig;
use super::seeding::{self, DOMAIN_HOLDOUT};
use super::{DataError, FrameSource};
use rand::seq::SliceRandom;
use rayon::prelude::*;

/// Which half of a labelled dataset to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The training images (e.g. Fashion-MNIST's 60 000, CIFAR-10's data_batch_1..5).
    Train,
    /// The test images (t10k, test_batch.bin, STL-10 test, a folder's `test/`).
    Test,
}

/// Labelled images ready for the trunk.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledImages {
    /// Channels per image (the trunk's).
    pub channels: usize,
    /// Height per image.
    pub height: usize,
    /// Width per image.
    pub width: usize,
    /// `len * channels * height * width` normalised floats, NCHW.
    pub images: Vec<f32>,
    /// One label per image, in `0..classes`.
    pub labels: Vec<u32>,
    /// Number of classes.
    pub classes: usize,
}

impl LabelledImages {
    /// Reads up to `limit` frames (all with `None`) from `source`, each of which must carry a
    /// label, and prepares them with `augment`'s size, channels, mean and std (no augmentation).
    pub fn from_source(
        source: &mut dyn FrameSource,
        augment: &AugmentConfig,
        limit: Option<usize>,
    ) -> Result<Self, DataError> {
        augment.validate()?;
        let origin = source.describe();
        let limit = limit.unwrap_or(usize::MAX);
        let mut frames = Vec::new();
        while frames.len() < limit {
            let Some(frame) = source.next_frame()? else {
                break;
            };
            super::geometry::validate(&frame, &origin)?;
            if frame.label.is_none() {
                return Err(DataError::Invalid(format!(
                    "{origin}: frame {} has no label (labelled evaluation needs a labelled source)",
                    frames.len()
                )));
            }
            frames.push(frame);
        }
        if frames.is_empty() {
            return Err(DataError::Invalid(format!("{origin}: no labelled images")));
        }
        let labels: Vec<u32> = frames.iter().map(|f| f.label.unwrap_or(0)).collect();
        let seen_classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
        let classes = source.classes().unwrap_or(0).max(seen_classes);
        let per = augment.sample_len();
        let mut images = vec![0f32; frames.len() * per];
        images
            .par_chunks_mut(per)
            .zip(frames.par_iter())
            .for_each(|(out, f)| augment.eval_into(f, out));
        Ok(LabelledImages {
            channels: augment.channels,
            height: augment.size,
            width: augment.size,
            images,
            labels,
            classes,
        })
    }

    /// Opens the `split` of the labelled dataset `args` names (see
    /// [`open_labelled_source`](super::open::open_labelled_source)) and prepares up to `limit`
    /// images for a trunk described by `augment`.
    pub fn load(
        args: &super::DataArgs,
        split: Split,
        cache_dir: &std::path::Path,
        augment: &AugmentConfig,
        limit: Option<usize>,
    ) -> Result<Self, DataError> {
        let mut source = super::open::open_labelled_source(args, split, cache_dir)?;
        Self::from_source(source.as_mut(), augment, limit)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Floats per image.
    pub fn sample_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Image `i`, CHW.
    pub fn image(&self, i: usize) -> &[f32] {
        let per = self.sample_len();
        &self.images[i * per..(i + 1) * per]
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Self {
        let mut images = Vec::with_capacity(indices.len() * self.sample_len());
        for &i in indices {
            images.extend_from_slice(self.image(i));
        }
        LabelledImages {
            channels: self.channels,
            height: self.height,
            width: self.width,
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            classes: self.classes,
        }
    }

    /// Splits into (kept, held out): `fraction` of every class, chosen by `seed`, is held out.
    /// Deterministic, stratified, and each part keeps the original order.
    pub fn holdout_split(&self, fraction: f64, seed: u64) -> (Self, Self) {
        let fraction = fraction.clamp(0.0, 1.0);
        let mut held = vec![false; self.len()];
        for class in 0..self.classes as u32 {
            let mut members: Vec<usize> = (0..self.len())
                .filter(|&i| self.labels[i] == class)
                .collect();
            members.shuffle(&mut seeding::rng_for(&[seed, DOMAIN_HOLDOUT, class as u64]));
            let take = (members.len() as f64 * fraction).round() as usize;
            members.into_iter().take(take).for_each(|i| held[i] = true);
        }
        let kept: Vec<usize> = (0..self.len()).filter(|&i| !held[i]).collect();
        let out: Vec<usize> = (0..self.len()).filter(|&i| held[i]).collect();
        (self.subset(&kept), self.subset(&out))
    }
}
