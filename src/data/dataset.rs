//! A finite dataset held in memory, and the pure function from (seed, step) to its batch:
//! the global sample `g = step * batch + i` lands at position `g mod N` of the permutation of
//! epoch `g div N` (seeded by (seed, epoch)), and is augmented with an RNG seeded by
//! (seed, step, i). A resumed run therefore sees exactly the batches it would have seen.

use super::augment::AugmentConfig;
use super::geometry;
use super::seeding::{self, DOMAIN_EPOCH, DOMAIN_SAMPLE};
use super::{DataError, Frame, FrameSource, ViewBatch};
use rand::seq::SliceRandom;
use rayon::prelude::*;

/// Frames larger than this many times the view size are shrunk on load: crops of them keep
/// enough detail, and memory stays bounded for folders of camera-sized images.
pub const KEEP_SCALE: usize = 2;

/// Converts a frame to the trunk's channel count and bounds its size (see [`KEEP_SCALE`]).
pub fn prepare_frame(
    frame: Frame,
    augment: &AugmentConfig,
    origin: &str,
) -> Result<Frame, DataError> {
    geometry::validate(&frame, origin)?;
    let frame = geometry::convert_channels(frame, augment.channels)?;
    Ok(geometry::shrink_to_fit(frame, KEEP_SCALE * augment.size))
}

/// An in-memory dataset with deterministic, resumable batching.
#[derive(Debug)]
pub struct InMemoryDataset {
    frames: Vec<Frame>,
    augment: AugmentConfig,
    seed: u64,
    /// The last epoch permutations computed (a batch can straddle two epochs).
    cache: Vec<(u64, Vec<u32>)>,
}

impl InMemoryDataset {
    /// Reads `source` to its end, preparing every frame for `augment`.
    pub fn load(
        source: &mut dyn FrameSource,
        augment: &AugmentConfig,
        seed: u64,
    ) -> Result<Self, DataError> {
        augment.validate()?;
        let origin = source.describe();
        let mut frames = Vec::with_capacity(source.len_hint().unwrap_or(0));
        while let Some(frame) = source.next_frame()? {
            frames.push(prepare_frame(frame, augment, &origin)?);
        }
        if source.skipped() > 0 {
            tracing::warn!("{origin}: skipped {} unreadable images", source.skipped());
        }
        if frames.is_empty() {
            return Err(DataError::Invalid(format!(
                "{origin}: no frames to learn from"
            )));
        }
        if frames.len() > u32::MAX as usize {
            return Err(DataError::Invalid(format!(
                "{origin}: more than 2^32 frames"
            )));
        }
        Ok(Self::from_frames(frames, augment.clone(), seed))
    }

    /// Wraps frames already prepared for `augment`.
    pub fn from_frames(frames: Vec<Frame>, augment: AugmentConfig, seed: u64) -> Self {
        InMemoryDataset {
            frames,
            augment,
            seed,
            cache: Vec::new(),
        }
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether there are no frames.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Bytes of pixel data held (the dominant memory cost).
    pub fn pixel_bytes(&self) -> usize {
        self.frames.iter().map(|f| f.pixels.len()).sum()
    }

    /// The frames, in source order.
    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }

    /// The shuffled order of `epoch`.
    fn permutation(&mut self, epoch: u64) -> &[u32] {
        if let Some(pos) = self.cache.iter().position(|(e, _)| *e == epoch) {
            return &self.cache[pos].1;
        }
        let mut order: Vec<u32> = (0..self.frames.len() as u32).collect();
        order.shuffle(&mut seeding::rng_for(&[self.seed, DOMAIN_EPOCH, epoch]));
        if self.cache.len() >= 2 {
            self.cache.remove(0);
        }
        self.cache.push((epoch, order));
        &self.cache[self.cache.len() - 1].1
    }

    /// Frame indices of batch `step`.
    pub fn batch_indices(&mut self, step: u64, batch: usize) -> Vec<usize> {
        let n = self.frames.len() as u64;
        (0..batch as u64)
            .map(|i| {
                let g = step * batch as u64 + i;
                self.permutation(g / n)[(g % n) as usize] as usize
            })
            .collect()
    }

    /// Batch `step` of size `batch`: a pure function of (seed, step), whatever came before.
    pub fn batch_at(&mut self, step: u64, batch: usize) -> ViewBatch {
        let indices = self.batch_indices(step, batch);
        let frames: Vec<&Frame> = indices.iter().map(|&i| &self.frames[i]).collect();
        augment_batch(&frames, &self.augment, self.seed, step)
    }
}

/// Two views of every frame, in parallel; sample `i` of batch `step` uses its own RNG, so the
/// result does not depend on thread scheduling.
pub fn augment_batch(
    frames: &[&Frame],
    augment: &AugmentConfig,
    seed: u64,
    step: u64,
) -> ViewBatch {
    let per = augment.sample_len();
    let mut first = vec![0f32; frames.len() * per];
    let mut second = vec![0f32; frames.len() * per];
    first
        .par_chunks_mut(per)
        .zip(second.par_chunks_mut(per))
        .enumerate()
        .for_each(|(i, (a, b))| {
            let mut rng = seeding::rng_for(&[seed, DOMAIN_SAMPLE, step, i as u64]);
            augment.two_views(frames[i], &mut rng, a, b);
        });
    ViewBatch {
        batch: frames.len(),
        channels: augment.channels,
        height: augment.size,
        width: augment.size,
        views: [first, second],
    }
}
