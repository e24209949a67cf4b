//! A built-in synthetic source: random smooth blobs, so `pretrain` can run with no files.
//!
//! Each frame is a few Gaussian blobs of random position, size and intensity on a noisy
//! background, drawn from one of `classes` templates (blob layout per class), so the images
//! have learnable structure and a label for kNN checks.

use super::{DataError, Frame, FrameSource};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Synthetic blob images with `classes` layouts.
pub struct SyntheticSource {
    rng: Xoshiro256PlusPlus,
    size: usize,
    channels: usize,
    classes: usize,
    remaining: Option<usize>,
    /// Blob centres per class, in [0, 1]^2.
    layouts: Vec<Vec<(f32, f32)>>,
}

impl SyntheticSource {
    /// `count = None` gives an endless stream.
    pub fn new(
        size: usize,
        channels: usize,
        classes: usize,
        count: Option<usize>,
        seed: u64,
    ) -> Self {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let layouts = (0..classes.max(1))
            .map(|_| {
                (0..3)
                    .map(|_| (rng.random::<f32>(), rng.random::<f32>()))
                    .collect()
            })
            .collect();
        Self {
            rng,
            size,
            channels,
            classes: classes.max(1),
            remaining: count,
            layouts,
        }
    }
}

impl FrameSource for SyntheticSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, DataError> {
        if let Some(left) = self.remaining.as_mut() {
            if *left == 0 {
                return Ok(None);
            }
            *left -= 1;
        }
        let label = self.rng.random_range(0..self.classes);
        let s = self.size;
        let mut pixels = vec![0u8; s * s * self.channels];
        let blobs: Vec<(f32, f32, f32, [f32; 3])> = self.layouts[label]
            .iter()
            .map(|&(cx, cy)| {
                let jitter = 0.08;
                let x = (cx + self.rng.random_range(-jitter..jitter)) * s as f32;
                let y = (cy + self.rng.random_range(-jitter..jitter)) * s as f32;
                let r = s as f32 * self.rng.random_range(0.08..0.2);
                let colour = [self.rng.random(), self.rng.random(), self.rng.random()];
                (x, y, r, colour)
            })
            .collect();
        for yy in 0..s {
            for xx in 0..s {
                for c in 0..self.channels {
                    let mut v = 0.1 * self.rng.random::<f32>();
                    for &(x, y, r, colour) in &blobs {
                        let d2 = (xx as f32 - x).powi(2) + (yy as f32 - y).powi(2);
                        v += (0.4 + 0.6 * colour[c]) * (-d2 / (2.0 * r * r)).exp();
                    }
                    pixels[(yy * s + xx) * self.channels + c] = (v.clamp(0.0, 1.0) * 255.0) as u8;
                }
            }
        }
        Ok(Some(Frame {
            width: s,
            height: s,
            channels: self.channels,
            pixels,
            label: Some(label as u32),
        }))
    }

    fn len_hint(&self) -> Option<usize> {
        self.remaining
    }

    fn describe(&self) -> String {
        format!(
            "synthetic blobs {}x{}x{}, {} classes",
            self.size, self.size, self.channels, self.classes
        )
    }
}

/// View pairs of synthetic frames with light augmentation (random shift, flip, brightness,
/// pixel noise). Needs no files: used by tests, benchmarks and `--data synthetic`.
pub struct SyntheticViews {
    source: SyntheticSource,
    rng: Xoshiro256PlusPlus,
    batch: usize,
}

impl SyntheticViews {
    /// An endless stream of `batch`-frame view pairs of `size x size x channels` images.
    pub fn new(size: usize, channels: usize, batch: usize, seed: u64) -> Self {
        Self {
            source: SyntheticSource::new(size, channels, 10, None, seed),
            rng: Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x005e_ed0f_51e5),
            batch,
        }
    }

    /// One augmented view of a frame, normalised to roughly zero mean and unit variance, CHW.
    fn view(&mut self, frame: &Frame, out: &mut Vec<f32>) {
        let (s, c) = (frame.width, frame.channels);
        let max_shift = (s / 8).max(1) as i64;
        let dx = self.rng.random_range(-max_shift..=max_shift) as isize;
        let dy = self.rng.random_range(-max_shift..=max_shift) as isize;
        let flip = self.rng.random_bool(0.5);
        let gain = self.rng.random_range(0.7f32..1.3);
        for ch in 0..c {
            for y in 0..s as isize {
                for x in 0..s as isize {
                    let sx = if flip { s as isize - 1 - x } else { x } + dx;
                    let sy = y + dy;
                    let v = if (0..s as isize).contains(&sx) && (0..s as isize).contains(&sy) {
                        frame.pixels[(sy as usize * s + sx as usize) * c + ch] as f32 / 255.0
                    } else {
                        0.0
                    };
                    let noise = self.rng.random_range(-0.05f32..0.05);
                    out.push((v * gain + noise - 0.25) / 0.25);
                }
            }
        }
    }

    /// The next batch of view pairs.
    pub fn next_views(&mut self) -> Result<super::ViewBatch, DataError> {
        let size = self.source.size;
        let channels = self.source.channels;
        let per_view = self.batch * channels * size * size;
        let mut views = [Vec::with_capacity(per_view), Vec::with_capacity(per_view)];
        for _ in 0..self.batch {
            let frame = self
                .source
                .next_frame()?
                .expect("the synthetic source is endless");
            let [a, b] = &mut views;
            self.view(&frame, a);
            self.view(&frame, b);
        }
        Ok(super::ViewBatch {
            batch: self.batch,
            channels,
            height: size,
            width: size,
            views,
        })
    }
}

impl crate::train::BatchStream for SyntheticViews {
    fn next_batch(&mut self) -> Result<Option<super::ViewBatch>, DataError> {
        self.next_views().map(Some)
    }
}
