//! Writers for the real on-disk dataset formats, so tests exercise the readers on genuine
//! files without shipping datasets.
#![allow(dead_code)]

use edgessl::data::Frame;
use edgessl::data::augment::{AugmentConfig, ColorJitter};
use flate2::Compression;
use flate2::write::GzEncoder;
use std::io::Write;
use std::path::Path;

/// An unsigned-byte IDX file (magic 0x00000803 for 3-D, …), optionally gzipped.
pub fn write_idx(path: &Path, dims: &[u32], data: &[u8], gzip: bool) {
    let mut bytes = vec![0u8, 0, 0x08, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    if gzip {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(&bytes).unwrap();
        bytes = enc.finish().unwrap();
    }
    std::fs::write(path, bytes).unwrap();
}

/// `n` distinct `h x w` gray images (pixel = 7·index + 3·y + x, mod 256) and labels `i % 10`.
pub fn gray_images(n: usize, h: usize, w: usize) -> (Vec<u8>, Vec<u8>) {
    let mut data = Vec::with_capacity(n * h * w);
    for i in 0..n {
        for y in 0..h {
            for x in 0..w {
                data.push(((7 * i + 3 * y + x) % 256) as u8);
            }
        }
    }
    (data, (0..n).map(|i| (i % 10) as u8).collect())
}

/// Writes a Fashion-MNIST-shaped set of four gzipped IDX files (28x28) into `dir`.
pub fn write_fake_fashion_mnist(dir: &Path, train: usize, test: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for (prefix, n) in [("train", train), ("t10k", test)] {
        let (images, labels) = gray_images(n, 28, 28);
        write_idx(
            &dir.join(format!("{prefix}-images-idx3-ubyte.gz")),
            &[n as u32, 28, 28],
            &images,
            true,
        );
        write_idx(
            &dir.join(format!("{prefix}-labels-idx1-ubyte.gz")),
            &[n as u32],
            &labels,
            true,
        );
    }
}

/// The RGB value the CIFAR/STL writers put at (image i, x, y).
pub fn pattern_rgb(i: usize, x: usize, y: usize) -> [u8; 3] {
    [
        ((x * 5 + i) % 256) as u8,
        ((y * 3 + 2 * i) % 256) as u8,
        ((x + y + 50 * i) % 256) as u8,
    ]
}

/// CIFAR-10 records: label byte, then R, G, B planes (row-major 32x32).
pub fn cifar_records(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &label) in labels.iter().enumerate() {
        out.push(label);
        for c in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    out.push(pattern_rgb(i, x, y)[c]);
                }
            }
        }
    }
    out
}

/// STL-10 images: per channel, column-major 96x96 (byte index c·9216 + x·96 + y).
pub fn stl_images(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n * 3 * 96 * 96];
    for i in 0..n {
        for c in 0..3 {
            for x in 0..96 {
                for y in 0..96 {
                    out[i * 27648 + c * 9216 + x * 96 + y] = pattern_rgb(i, x, y)[c];
                }
            }
        }
    }
    out
}

/// A `w x h` frame whose every pixel has value `v`.
pub fn flat_frame(w: usize, h: usize, channels: usize, v: u8, label: Option<u32>) -> Frame {
    Frame {
        width: w,
        height: h,
        channels,
        pixels: vec![v; w * h * channels],
        label,
    }
}

/// A frame with a horizontal gradient (left dark, right bright): flips are visible.
pub fn ramp_frame(w: usize, h: usize, channels: usize) -> Frame {
    let mut pixels = Vec::with_capacity(w * h * channels);
    for y in 0..h {
        for x in 0..w {
            for c in 0..channels {
                pixels.push(((x * 255) / (w - 1).max(1)) as u8 ^ (c as u8 * 17) ^ ((y % 2) as u8));
            }
        }
    }
    Frame {
        width: w,
        height: h,
        channels,
        pixels,
        label: None,
    }
}

/// A source over frames held in a vector (finite: `len_hint` is known).
pub struct VecSource {
    pub frames: std::vec::IntoIter<Frame>,
    pub finite: bool,
}

impl VecSource {
    pub fn finite(frames: Vec<Frame>) -> Self {
        VecSource {
            frames: frames.into_iter(),
            finite: true,
        }
    }
    /// Behaves like a stream: no length known up front.
    pub fn stream(frames: Vec<Frame>) -> Self {
        VecSource {
            frames: frames.into_iter(),
            finite: false,
        }
    }
}

impl edgessl::data::FrameSource for VecSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, edgessl::data::DataError> {
        Ok(self.frames.next())
    }
    fn len_hint(&self) -> Option<usize> {
        self.finite.then(|| self.frames.len())
    }
    fn describe(&self) -> String {
        "test frames".into()
    }
}

/// A recipe that only resizes and normalises (mean 0, std 1): the identity on [0, 1] values.
pub fn plain(size: usize, channels: usize) -> AugmentConfig {
    AugmentConfig {
        name: "plain".into(),
        size,
        channels,
        crop_scale: [1.0, 1.0],
        crop_ratio: [1.0, 1.0],
        flip_p: 0.0,
        jitter: ColorJitter {
            brightness: 0.0,
            contrast: 0.0,
            saturation: 0.0,
            hue: 0.0,
            p: 0.0,
        },
        grayscale_p: 0.0,
        blur: None,
        solarize: None,
        mean: vec![0.0; channels],
        std: vec![1.0; channels],
    }
}
