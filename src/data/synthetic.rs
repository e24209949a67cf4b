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
    pub fn new(size: usize, channels: usize, classes: usize, count: Option<usize>, seed: u64) -> Self {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let layouts = (0..classes.max(1))
            .map(|_| (0..3).map(|_| (rng.random::<f32>(), rng.random::<f32>())).collect())
            .collect();
        Self { rng, size, channels, classes: classes.max(1), remaining: count, layouts }
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
        Ok(Some(Frame { width: s, height: s, channels: self.channels, pixels, label: Some(label as u32) }))
    }

    fn len_hint(&self) -> Option<usize> {
        self.remaining
    }

    fn describe(&self) -> String {
        format!("synthetic blobs {}x{}x{}, {} classes", self.size, self.size, self.channels, self.classes)
    }
}
