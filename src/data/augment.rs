//! The two-view augmentation pipeline of BYOL / SimSiam (REFERENCE.md, "Augmentations"):
//! RandomResizedCrop → horizontal flip → colour jitter (random order) → random grayscale →
//! Gaussian blur → solarize → normalise, producing float CHW views for the trunk.
//!
//! [`AugmentConfig`] is plain serde data so it can live in the TOML training config; presets
//! reproduce the published recipes (`cifar32`, `stl96`) and the peer PyTorch run (`fashion28`).

use super::geometry::{self, CropBox};
use super::{DataError, Frame};
use rand::Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;

/// Names accepted by [`AugmentConfig::preset`].
pub const PRESETS: &[&str] = &["fashion28", "cifar32", "stl96"];

/// Colour jitter as torchvision's `ColorJitter`, applied with probability `p`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColorJitter {
    /// Brightness factor drawn from `[max(0, 1 − b), 1 + b]`.
    pub brightness: f32,
    /// Contrast factor drawn from `[max(0, 1 − c), 1 + c]` (blend with the mean gray level).
    pub contrast: f32,
    /// Saturation factor drawn from `[max(0, 1 − s), 1 + s]` (colour views only).
    pub saturation: f32,
    /// Hue shift drawn from `[−h, h]` turns (0 ≤ h ≤ 0.5; colour views only).
    pub hue: f32,
    /// Probability of applying the jitter at all.
    pub p: f32,
}

/// Gaussian blur with a random sigma, applied with probability `p`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GaussianBlur {
    /// Odd kernel size in pixels.
    pub kernel: usize,
    /// Sigma drawn uniformly from `[sigma[0], sigma[1]]`.
    pub sigma: [f32; 2],
    /// Probability of blurring.
    pub p: f32,
}

/// Solarization (`x ≥ threshold → 1 − x` on [0, 1] values), applied with probability `p`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Solarize {
    /// Threshold on [0, 1] intensities.
    pub threshold: f32,
    /// Probability of solarizing.
    pub p: f32,
}

/// Everything that defines how a frame becomes a view for the trunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentConfig {
    /// Preset this configuration started from (informational, for logs).
    #[serde(default = "custom_name")]
    pub name: String,
    /// Output side in pixels (views are `size x size`).
    pub size: usize,
    /// Trunk input channels, 1 or 3. Frames are converted (luma / replication) to match.
    pub channels: usize,
    /// RandomResizedCrop area fraction range.
    pub crop_scale: [f32; 2],
    /// RandomResizedCrop aspect-ratio (w/h) range, sampled log-uniformly.
    pub crop_ratio: [f32; 2],
    /// Horizontal flip probability.
    pub flip_p: f32,
    /// Colour jitter.
    pub jitter: ColorJitter,
    /// Random grayscale probability (colour views only).
    pub grayscale_p: f32,
    /// Optional Gaussian blur.
    #[serde(default)]
    pub blur: Option<GaussianBlur>,
    /// Optional solarization.
    #[serde(default)]
    pub solarize: Option<Solarize>,
    /// Per-channel mean subtracted after augmentation (and from eval images).
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided by after subtracting the mean.
    pub std: Vec<f32>,
}

impl AugmentConfig {
    /// A preset by name: `fashion28`, `cifar32` or `stl96`.
    pub fn preset(name: &str) -> Result<Self, DataError> {
        match name {
            "fashion28" => Ok(Self::fashion28()),
            "cifar32" => Ok(Self::cifar32()),
            "stl96" => Ok(Self::stl96()),
            other => Err(DataError::Invalid(format!(
                "unknown augmentation preset '{other}' (known: {})",
                PRESETS.join(", ")
            ))),
        }
    }

    /// 28 px gray, the peer PyTorch recipe: crop scale 0.3–1, ratio 3/4–4/3, flip 0.5,
    /// brightness/contrast 0.4 with p 0.8. Mean/std are Fashion-MNIST's training-set statistics.
    pub fn fashion28() -> Self {
        AugmentConfig {
            name: "fashion28".into(),
            size: 28,
            channels: 1,
            crop_scale: [0.3, 1.0],
            crop_ratio: [3.0 / 4.0, 4.0 / 3.0],
            flip_p: 0.5,
            jitter: ColorJitter {
                brightness: 0.4,
                contrast: 0.4,
                saturation: 0.0,
                hue: 0.0,
                p: 0.8,
            },
            grayscale_p: 0.0,
            blur: None,
            solarize: None,
            mean: vec![0.2860],
            std: vec![0.3530],
        }
    }

    /// 32 px colour, the CIFAR-10 reference: crop 0.08–1, flip 0.5, jitter (0.4, 0.4, 0.4, 0.1)
    /// p 0.8, grayscale 0.2, no blur. Mean/std are CIFAR-10's training-set statistics.
    pub fn cifar32() -> Self {
        AugmentConfig {
            name: "cifar32".into(),
            size: 32,
            channels: 3,
            crop_scale: [0.08, 1.0],
            crop_ratio: [3.0 / 4.0, 4.0 / 3.0],
            flip_p: 0.5,
            jitter: ColorJitter {
                brightness: 0.4,
                contrast: 0.4,
                saturation: 0.4,
                hue: 0.1,
                p: 0.8,
            },
            grayscale_p: 0.2,
            blur: None,
            solarize: None,
            mean: vec![0.4914, 0.4822, 0.4465],
            std: vec![0.2470, 0.2435, 0.2616],
        }
    }

    /// 96 px colour, the STL-10 reference: crop 0.08–1, flip 0.5, jitter (0.8, 0.8, 0.8, 0.2)
    /// p 0.8, grayscale 0.2, Gaussian blur always (kernel 9, sigma 0.1–2). STL-10 statistics.
    pub fn stl96() -> Self {
        AugmentConfig {
            name: "stl96".into(),
            size: 96,
            channels: 3,
            crop_scale: [0.08, 1.0],
            crop_ratio: [3.0 / 4.0, 4.0 / 3.0],
            flip_p: 0.5,
            jitter: ColorJitter {
                brightness: 0.8,
                contrast: 0.8,
                saturation: 0.8,
                hue: 0.2,
                p: 0.8,
            },
            grayscale_p: 0.2,
            blur: Some(GaussianBlur {
                kernel: 9,
                sigma: [0.1, 2.0],
                p: 1.0,
            }),
            solarize: None,
            mean: vec![0.4467, 0.4398, 0.4066],
            std: vec![0.2603, 0.2566, 0.2713],
        }
    }

    /// The same recipe for a trunk with `channels` inputs: a colour preset on a gray trunk
    /// uses the luma of its mean/std, a gray preset on a colour trunk replicates them.
    pub fn with_channels(mut self, channels: usize) -> Self {
        if channels == self.channels {
            return self;
        }
        let gray = |v: &[f32]| {
            if v.len() == 3 {
                geometry::luma(v[0], v[1], v[2])
            } else {
                v.iter().sum::<f32>() / v.len() as f32
            }
        };
        (self.mean, self.std) = if channels == 1 {
            (vec![gray(&self.mean)], vec![gray(&self.std)])
        } else {
            (
                vec![gray(&self.mean); channels],
                vec![gray(&self.std); channels],
            )
        };
        self.channels = channels;
        self
    }

    /// The same recipe at another output size.
    pub fn with_size(mut self, size: usize) -> Self {
        self.size = size;
        self
    }

    /// Floats in one view of one frame: `channels * size * size`.
    pub fn sample_len(&self) -> usize {
        self.channels * self.size * self.size
    }

    /// Rejects configurations that would produce garbage or divide by zero.
    pub fn validate(&self) -> Result<(), DataError> {
        let bad = |m: String| {
            Err(DataError::Invalid(format!(
                "augmentation '{}': {m}",
                self.name
            )))
        };
        let prob = |p: f32| (0.0..=1.0).contains(&p);
        if self.channels != 1 && self.channels != 3 {
            return bad(format!("channels must be 1 or 3, got {}", self.channels));
        }
        if self.size == 0 || self.size > 4096 {
            return bad(format!("size must be in 1..=4096, got {}", self.size));
        }
        if self.mean.len() != self.channels || self.std.len() != self.channels {
            return bad(format!("mean and std need {} values each", self.channels));
        }
        if self.std.iter().any(|&s| s.is_nan() || s <= 0.0) {
            return bad("std values must be > 0".into());
        }
        let [s0, s1] = self.crop_scale;
        if !(s0 > 0.0 && s0 <= s1 && s1 <= 1.0) {
            return bad(format!(
                "crop_scale must satisfy 0 < min <= max <= 1, got {s0}..{s1}"
            ));
        }
        let [r0, r1] = self.crop_ratio;
        if !(r0 > 0.0 && r0 <= r1) {
            return bad(format!(
                "crop_ratio must satisfy 0 < min <= max, got {r0}..{r1}"
            ));
        }
        let j = &self.jitter;
        if ![self.flip_p, self.grayscale_p, j.p].into_iter().all(prob) {
            return bad("probabilities must lie in [0, 1]".into());
        }
        if j.brightness < 0.0
            || j.contrast < 0.0
            || j.saturation < 0.0
            || !(0.0..=0.5).contains(&j.hue)
        {
            return bad("jitter strengths must be >= 0 and hue in [0, 0.5]".into());
        }
        if let Some(b) = &self.blur {
            if b.kernel % 2 == 0 || b.kernel > 63 || !prob(b.p) {
                return bad("blur kernel must be odd and <= 63, p in [0, 1]".into());
            }
            if !(b.sigma[0] > 0.0 && b.sigma[0] <= b.sigma[1]) {
                return bad("blur sigma must satisfy 0 < min <= max".into());
            }
        }
        if let Some(s) = &self.solarize
            && !prob(s.p)
        {
            return bad("solarize p must lie in [0, 1]".into());
        }
        Ok(())
    }

    /// Writes one augmented, normalised view of `frame` into `out` (`sample_len()` floats).
    /// The frame is converted to the config's channel count first if needed. The config must
    /// pass [`validate`](Self::validate) (the loader checks it once up front).
    pub fn augment_into<R: Rng + ?Sized>(&self, frame: &Frame, rng: &mut R, out: &mut [f32]) {
        if frame.channels != self.channels {
            match geometry::convert_channels(frame.clone(), self.channels) {
                Ok(f) => return self.augment_into(&f, rng, out),
                Err(_) => return out.fill(0.0),
            }
        }
        SCRATCH.with(|s| self.augment_with(frame, rng, out, &mut s.borrow_mut()));
    }

    /// Two independently augmented views of `frame` (the positive pair).
    pub fn two_views<R: Rng + ?Sized>(
        &self,
        frame: &Frame,
        rng: &mut R,
        first: &mut [f32],
        second: &mut [f32],
    ) {
        self.augment_into(frame, rng, first);
        self.augment_into(frame, rng, second);
    }

    /// The un-augmented view for evaluation: centre square, resized to `size`, normalised.
    pub fn eval_into(&self, frame: &Frame, out: &mut [f32]) {
        if frame.channels != self.channels {
            match geometry::convert_channels(frame.clone(), self.channels) {
                Ok(f) => return self.eval_into(&f, out),
                Err(_) => return out.fill(0.0),
            }
        }
        let crop = CropBox::centre_square(frame.width, frame.height);
        SCRATCH.with(|s| {
            geometry::crop_resize(
                frame,
                crop,
                self.size,
                self.size,
                out,
                &mut s.borrow_mut().resize,
            )
        });
        self.normalise(out);
    }

    /// Maps [0, 1] CHW values to `(x − mean) / std` per channel, in place.
    pub fn normalise(&self, chw: &mut [f32]) {
        let plane = self.size * self.size;
        for (c, values) in chw.chunks_exact_mut(plane).enumerate() {
            let (m, inv) = (self.mean[c], 1.0 / self.std[c]);
            values.iter_mut().for_each(|v| *v = (*v - m) * inv);
        }
    }

    fn augment_with<R: Rng + ?Sized>(
        &self,
        frame: &Frame,
        rng: &mut R,
        out: &mut [f32],
        scratch: &mut Scratch,
    ) {
        let (size, c) = (self.size, self.channels);
        let crop = sample_crop(
            frame.width,
            frame.height,
            self.crop_scale,
            self.crop_ratio,
            rng,
        );
        geometry::crop_resize(frame, crop, size, size, out, &mut scratch.resize);
        if rng.random::<f32>() < self.flip_p {
            out.chunks_exact_mut(size).for_each(|row| row.reverse());
        }
        let j = &self.jitter;
        if j.p > 0.0 && rng.random::<f32>() < j.p {
            let mut order = [0u8, 1, 2, 3];
            order.shuffle(rng);
            let factor = |s: f32, rng: &mut R| rng.random_range((1.0 - s).max(0.0)..=1.0 + s);
            for op in order {
                match op {
                    0 if j.brightness > 0.0 => {
                        let f = factor(j.brightness, rng);
                        out.iter_mut().for_each(|v| *v = (*v * f).clamp(0.0, 1.0));
                    }
                    1 if j.contrast > 0.0 => adjust_contrast(out, c, factor(j.contrast, rng)),
                    2 if j.saturation > 0.0 && c == 3 => {
                        adjust_saturation(out, factor(j.saturation, rng))
                    }
                    3 if j.hue > 0.0 && c == 3 => shift_hue(out, rng.random_range(-j.hue..=j.hue)),
                    _ => {}
                }
            }
        }
        if c == 3 && self.grayscale_p > 0.0 && rng.random::<f32>() < self.grayscale_p {
            to_grayscale(out);
        }
        if let Some(b) = &self.blur
            && rng.random::<f32>() < b.p
        {
            let sigma = rng.random_range(b.sigma[0]..=b.sigma[1]);
            gaussian_blur(out, size, b.kernel, sigma, &mut scratch.blur);
        }
        if let Some(s) = &self.solarize
            && rng.random::<f32>() < s.p
        {
            out.iter_mut()
                .filter(|v| **v >= s.threshold)
                .for_each(|v| *v = 1.0 - *v);
        }
        self.normalise(out);
    }
}

fn custom_name() -> String {
    "custom".into()
}

/// Per-thread buffers so augmenting allocates nothing in the steady state.
#[derive(Default)]
struct Scratch {
    resize: Vec<f32>,
    blur: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// torchvision's `RandomResizedCrop.get_params`: up to 10 tries at a box of random area
/// fraction (uniform in `scale`) and log-uniform aspect ratio that fits the frame, else a
/// centre crop with the ratio clamped into range.
pub fn sample_crop<R: Rng + ?Sized>(
    width: usize,
    height: usize,
    scale: [f32; 2],
    ratio: [f32; 2],
    rng: &mut R,
) -> CropBox {
    let (wf, hf) = (width as f32, height as f32);
    let area = wf * hf;
    let (lr0, lr1) = (ratio[0].ln(), ratio[1].ln());
    for _ in 0..10 {
        let target = area * rng.random_range(scale[0]..=scale[1]);
        let aspect = rng.random_range(lr0..=lr1).exp();
        let w = (target * aspect).sqrt().round() as usize;
        let h = (target / aspect).sqrt().round() as usize;
        if w > 0 && h > 0 && w <= width && h <= height {
            let top = rng.random_range(0..=height - h);
            let left = rng.random_range(0..=width - w);
            return CropBox {
                left: left as f32,
                top: top as f32,
                width: w as f32,
                height: h as f32,
            };
        }
    }
    let in_ratio = wf / hf;
    let (w, h) = if in_ratio < ratio[0] {
        (wf, (wf / ratio[0]).round())
    } else if in_ratio > ratio[1] {
        ((hf * ratio[1]).round(), hf)
    } else {
        (wf, hf)
    };
    CropBox {
        left: ((wf - w) / 2.0).floor(),
        top: ((hf - h) / 2.0).floor(),
        width: w,
        height: h,
    }
}

/// Blend with the mean gray level of the whole view (torchvision `adjust_contrast`).
fn adjust_contrast(chw: &mut [f32], channels: usize, factor: f32) {
    let plane = chw.len() / channels;
    let mean = if channels == 3 {
        let (r, rest) = chw.split_at(plane);
        let (g, b) = rest.split_at(plane);
        r.iter()
            .zip(g)
            .zip(b)
            .map(|((&r, &g), &b)| geometry::luma(r, g, b))
            .sum::<f32>()
            / plane as f32
    } else {
        chw.iter().sum::<f32>() / plane as f32
    };
    let offset = (1.0 - factor) * mean;
    chw.iter_mut()
        .for_each(|v| *v = (factor * *v + offset).clamp(0.0, 1.0));
}

/// Blend each pixel with its own luma (torchvision `adjust_saturation`).
fn adjust_saturation(chw: &mut [f32], factor: f32) {
    let plane = chw.len() / 3;
    let (r, rest) = chw.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for i in 0..plane {
        let l = (1.0 - factor) * geometry::luma(r[i], g[i], b[i]);
        r[i] = (factor * r[i] + l).clamp(0.0, 1.0);
        g[i] = (factor * g[i] + l).clamp(0.0, 1.0);
        b[i] = (factor * b[i] + l).clamp(0.0, 1.0);
    }
}

/// Rotate the hue by `shift` turns in HSV space (torchvision `adjust_hue`).
fn shift_hue(chw: &mut [f32], shift: f32) {
    let plane = chw.len() / 3;
    let (rs, rest) = chw.split_at_mut(plane);
    let (gs, bs) = rest.split_at_mut(plane);
    for i in 0..plane {
        let (r, g, b) = (rs[i], gs[i], bs[i]);
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        let delta = max - min;
        if delta <= 0.0 {
            continue; // gray: hue undefined, nothing to rotate
        }
        // Hue in turns, in [0, 1); the wrap-arounds avoid fmod on the per-pixel path.
        let mut h = if max == r {
            (g - b) / delta
        } else if max == g {
            (b - r) / delta + 2.0
        } else {
            (r - g) / delta + 4.0
        } / 6.0
            + shift;
        while h < 0.0 {
            h += 1.0;
        }
        while h >= 1.0 {
            h -= 1.0;
        }
        let h = h * 6.0;
        let (v, s) = (max, delta / max);
        let sector = (h as i32).min(5);
        let f = h - sector as f32;
        let p = v * (1.0 - s);
        let q = v * (1.0 - s * f);
        let t = v * (1.0 - s * (1.0 - f));
        let (r, g, b) = match sector {
            0 => (v, t, p),
            1 => (q, v, p),
            2 => (p, v, t),
            3 => (p, q, v),
            4 => (t, p, v),
            _ => (v, p, q),
        };
        (rs[i], gs[i], bs[i]) = (r, g, b);
    }
}

/// Replace all three planes by the luma (torchvision `RandomGrayscale` keeps 3 channels).
fn to_grayscale(chw: &mut [f32]) {
    let plane = chw.len() / 3;
    let (r, rest) = chw.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for i in 0..plane {
        let l = geometry::luma(r[i], g[i], b[i]);
        (r[i], g[i], b[i]) = (l, l, l);
    }
}

/// Separable Gaussian blur of every `size x size` plane with reflect padding (as torchvision).
/// Both passes run as whole-row multiply-adds over a padded copy, which vectorises.
fn gaussian_blur(chw: &mut [f32], size: usize, kernel: usize, sigma: f32, tmp: &mut Vec<f32>) {
    let half = kernel / 2;
    let mut weights = [0f32; 64];
    let mut total = 0.0;
    for (k, w) in weights.iter_mut().enumerate().take(kernel) {
        let x = k as f32 - half as f32;
        *w = (-x * x / (2.0 * sigma * sigma)).exp();
        total += *w;
    }
    weights.iter_mut().take(kernel).for_each(|w| *w /= total);
    let weights = &weights[..kernel];
    // Reflect without repeating the edge pixel: index −1 → 1, size → size − 2.
    let reflect = |i: isize| -> usize {
        let n = size as isize;
        if n == 1 {
            return 0;
        }
        let period = 2 * (n - 1);
        let m = i.rem_euclid(period);
        (if m < n { m } else { period - m }) as usize
    };
    let padded_len = size + 2 * half;
    let source_of: Vec<usize> = (0..padded_len)
        .map(|p| reflect(p as isize - half as isize))
        .collect();
    tmp.clear();
    tmp.resize(size * size + padded_len, 0.0);
    let (rows, pad) = tmp.split_at_mut(size * size);
    for plane in chw.chunks_exact_mut(size * size) {
        // Horizontal pass into `rows`.
        for y in 0..size {
            let row = &plane[y * size..(y + 1) * size];
            for (p, &s) in pad.iter_mut().zip(&source_of) {
                *p = row[s];
            }
            let out = &mut rows[y * size..(y + 1) * size];
            out.fill(0.0);
            for (k, &w) in weights.iter().enumerate() {
                for (o, &v) in out.iter_mut().zip(&pad[k..k + size]) {
                    *o += w * v;
                }
            }
        }
        // Vertical pass back into the plane, one output row at a time.
        for y in 0..size {
            let out = &mut plane[y * size..(y + 1) * size];
            out.fill(0.0);
            for (k, &w) in weights.iter().enumerate() {
                let src = source_of[y + k];
                for (o, &v) in out.iter_mut().zip(&rows[src * size..(src + 1) * size]) {
                    *o += w * v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_round_trip_through_toml() {
        for name in PRESETS {
            let cfg = AugmentConfig::preset(name).unwrap();
            cfg.validate().unwrap();
            let text = toml::to_string(&cfg).unwrap();
            let back: AugmentConfig = toml::from_str(&text).unwrap();
            assert_eq!(back, cfg);
        }
        assert!(AugmentConfig::preset("imagenet").is_err());
    }

    #[test]
    fn channel_adaptation_keeps_mean_std_consistent() {
        let gray = AugmentConfig::cifar32().with_channels(1);
        assert_eq!((gray.channels, gray.mean.len(), gray.std.len()), (1, 1, 1));
        gray.validate().unwrap();
        let colour = AugmentConfig::fashion28().with_channels(3);
        assert_eq!(colour.mean, vec![0.2860; 3]);
        colour.validate().unwrap();
    }

    #[test]
    fn hue_shift_by_a_third_turn_rotates_primaries() {
        let mut px = vec![1.0, 0.0, 0.0]; // pure red, one pixel
        shift_hue(&mut px, 1.0 / 3.0);
        assert!((px[0] - 0.0).abs() < 1e-5 && (px[1] - 1.0).abs() < 1e-5 && px[2].abs() < 1e-5);
        let mut px = vec![0.2, 0.6, 0.4];
        shift_hue(&mut px, 0.0);
        assert!((px[0] - 0.2).abs() < 1e-5 && (px[1] - 0.6).abs() < 1e-5);
    }

    #[test]
    fn blur_preserves_a_constant_plane_and_smooths_an_impulse() {
        let mut flat = vec![0.5; 9 * 9];
        gaussian_blur(&mut flat, 9, 9, 1.5, &mut Vec::new());
        assert!(flat.iter().all(|v| (v - 0.5).abs() < 1e-5));
        // Far enough from the border that reflection does not fold mass back in.
        let mut impulse = vec![0.0; 21 * 21];
        impulse[10 * 21 + 10] = 1.0;
        gaussian_blur(&mut impulse, 21, 9, 1.5, &mut Vec::new());
        assert!(impulse[10 * 21 + 10] < 0.2 && impulse[10 * 21 + 11] > 0.0);
        assert!((impulse.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }
}
