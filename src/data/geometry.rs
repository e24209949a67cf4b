//! Geometry and colour-model conversions between source frames and the trunk's input:
//! channel conversion (luma / replication), memory-bounding downscale, and antialiased
//! crop-and-resize into the float CHW layout the encoder takes.

use super::{DataError, Frame};
use image::imageops::FilterType;
use image::{ImageBuffer, Luma, Rgb};

/// ITU-R BT.601 luma, the weights of PIL's "L" mode and torchvision's `Grayscale`, so a gray
/// trunk sees colour frames the way the reference recipes do.
#[inline]
pub fn luma(r: f32, g: f32, b: f32) -> f32 {
    0.299 * r + 0.587 * g + 0.114 * b
}

/// Converts `frame` to `channels` (1 or 3): colour → gray takes the luma, gray → colour
/// replicates the plane. Same-channel frames are returned unchanged.
pub fn convert_channels(frame: Frame, channels: usize) -> Result<Frame, DataError> {
    match (frame.channels, channels) {
        (a, b) if a == b && (a == 1 || a == 3) => Ok(frame),
        (3, 1) => {
            let pixels = frame
                .pixels
                .chunks_exact(3)
                .map(|p| {
                    // Integer BT.601 with rounding: exact for equal r = g = b.
                    ((299 * p[0] as u32 + 587 * p[1] as u32 + 114 * p[2] as u32 + 500) / 1000) as u8
                })
                .collect();
            Ok(Frame {
                channels: 1,
                pixels,
                ..frame
            })
        }
        (1, 3) => {
            let pixels = frame.pixels.iter().flat_map(|&v| [v, v, v]).collect();
            Ok(Frame {
                channels: 3,
                pixels,
                ..frame
            })
        }
        (from, to) => Err(DataError::Invalid(format!(
            "cannot convert a {from}-channel frame to {to} channels (only 1 and 3 are supported)"
        ))),
    }
}

/// Downscales `frame` (triangle filter, aspect kept) so its shorter side is at most `max_short`.
/// Keeps in-memory datasets and the replay buffer small when frames are much larger than the
/// trunk input; frames already small enough are returned as they are.
pub fn shrink_to_fit(frame: Frame, max_short: usize) -> Frame {
    let short = frame.width.min(frame.height);
    if short <= max_short || max_short == 0 {
        return frame;
    }
    let scale = max_short as f64 / short as f64;
    let nw = ((frame.width as f64 * scale).round() as u32).max(1);
    let nh = ((frame.height as f64 * scale).round() as u32).max(1);
    let (w, h) = (frame.width as u32, frame.height as u32);
    let pixels = match frame.channels {
        1 => ImageBuffer::<Luma<u8>, _>::from_raw(w, h, frame.pixels)
            .map(|img| image::imageops::resize(&img, nw, nh, FilterType::Triangle).into_raw()),
        _ => ImageBuffer::<Rgb<u8>, _>::from_raw(w, h, frame.pixels)
            .map(|img| image::imageops::resize(&img, nw, nh, FilterType::Triangle).into_raw()),
    };
    match pixels {
        Some(pixels) => Frame {
            width: nw as usize,
            height: nh as usize,
            pixels,
            label: frame.label,
            ..frame
        },
        // Only reachable for a frame whose buffer disagrees with its geometry; callers validate
        // frames first, so an empty frame here is preferable to a panic.
        None => Frame {
            width: 0,
            height: 0,
            pixels: Vec::new(),
            ..frame
        },
    }
}

/// A crop rectangle in source pixel coordinates (may be fractional).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropBox {
    /// Left edge.
    pub left: f32,
    /// Top edge.
    pub top: f32,
    /// Width (> 0).
    pub width: f32,
    /// Height (> 0).
    pub height: f32,
}

impl CropBox {
    /// The whole frame.
    pub fn full(width: usize, height: usize) -> Self {
        CropBox {
            left: 0.0,
            top: 0.0,
            width: width as f32,
            height: height as f32,
        }
    }

    /// The largest centred square (the eval-time "resize + centre crop").
    pub fn centre_square(width: usize, height: usize) -> Self {
        let side = width.min(height) as f32;
        CropBox {
            left: ((width as f32 - side) / 2.0).floor(),
            top: ((height as f32 - side) / 2.0).floor(),
            width: side,
            height: side,
        }
    }
}

/// Resampling taps along one axis: `n` source indices and weights per output position.
struct Taps {
    n: usize,
    index: Vec<usize>,
    weight: Vec<f32>,
}

/// Triangle-filter taps whose support widens with the downscale factor (as PIL's antialiased
/// bilinear), so a large crop squeezed into a small output averages instead of aliasing.
/// Indices are clamped into the crop, which matches "crop, then resize".
fn taps(start: f32, len: f32, limit: usize, out: usize) -> Taps {
    let scale = len / out as f32;
    let filter_scale = scale.max(1.0);
    let support = filter_scale;
    let n = (2.0 * support).ceil() as usize + 1;
    let lo = (start.floor().max(0.0) as usize).min(limit - 1);
    let hi = (((start + len).ceil() as usize).min(limit)).max(lo + 1) - 1;
    let mut index = Vec::with_capacity(out * n);
    let mut weight = Vec::with_capacity(out * n);
    for o in 0..out {
        let centre = start + (o as f32 + 0.5) * scale;
        let first = (centre - support - 0.5).ceil() as i64;
        let mut ws = [0f32; 64];
        let mut total = 0.0;
        for (k, w) in ws.iter_mut().enumerate().take(n) {
            let i = first + k as i64;
            let t = ((i as f32 + 0.5 - centre) / filter_scale).abs();
            *w = (1.0 - t).max(0.0);
            total += *w;
        }
        for (k, w) in ws.iter().enumerate().take(n) {
            let i = (first + k as i64).clamp(lo as i64, hi as i64) as usize;
            index.push(i);
            weight.push(if total > 0.0 {
                w / total
            } else if k == 0 {
                1.0
            } else {
                0.0
            });
        }
    }
    Taps { n, index, weight }
}

/// Largest downscale factor `crop_resize` handles; the loader pre-shrinks frames so that crops
/// stay far below it.
const MAX_TAPS: usize = 64;

/// Crops `crop` out of `frame` and resizes it to `out_h x out_w`, writing channel-planar (CHW)
/// floats in [0, 1] into `out` (`frame.channels * out_h * out_w` values).
///
/// `scratch` is reused between calls to avoid an allocation per image.
pub fn crop_resize(
    frame: &Frame,
    crop: CropBox,
    out_h: usize,
    out_w: usize,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let c = frame.channels;
    debug_assert_eq!(out.len(), c * out_h * out_w);
    if frame.width == 0 || frame.height == 0 {
        out.fill(0.0);
        return;
    }
    // Clamp the scale so the tap buffer in `taps` is never overrun, whatever the caller passes.
    let max_len_w = out_w as f32 * (MAX_TAPS as f32 / 2.0 - 1.0);
    let max_len_h = out_h as f32 * (MAX_TAPS as f32 / 2.0 - 1.0);
    let tx = taps(crop.left, crop.width.min(max_len_w), frame.width, out_w);
    let ty = taps(crop.top, crop.height.min(max_len_h), frame.height, out_h);
    let row_lo = *ty.index.iter().min().unwrap_or(&0);
    let row_hi = *ty.index.iter().max().unwrap_or(&0);
    let rows = row_hi - row_lo + 1;
    // Horizontal pass over the rows the vertical taps touch, channel-planar so the vertical
    // pass is a few contiguous row multiply-adds: scratch[ch][row][x].
    scratch.clear();
    scratch.resize(c * rows * out_w, 0.0);
    let src = &frame.pixels;
    let stride = frame.width * c;
    for r in 0..rows {
        let src_row = &src[(row_lo + r) * stride..(row_lo + r + 1) * stride];
        for x in 0..out_w {
            let idx = &tx.index[x * tx.n..(x + 1) * tx.n];
            let wts = &tx.weight[x * tx.n..(x + 1) * tx.n];
            for ch in 0..c {
                let mut acc = 0.0;
                for (&i, &w) in idx.iter().zip(wts) {
                    acc += w * src_row[i * c + ch] as f32;
                }
                scratch[(ch * rows + r) * out_w + x] = acc;
            }
        }
    }
    // Vertical pass into CHW, scaling bytes to [0, 1].
    let plane = out_h * out_w;
    for ch in 0..c {
        for y in 0..out_h {
            let out_row = &mut out[ch * plane + y * out_w..ch * plane + (y + 1) * out_w];
            out_row.fill(0.0);
            for k in 0..ty.n {
                let w = ty.weight[y * ty.n + k] / 255.0;
                if w == 0.0 {
                    continue;
                }
                let r = ty.index[y * ty.n + k] - row_lo;
                let src_row = &scratch[(ch * rows + r) * out_w..(ch * rows + r + 1) * out_w];
                for (o, &v) in out_row.iter_mut().zip(src_row) {
                    *o += w * v;
                }
            }
            out_row.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
        }
    }
}

/// Checks that a frame's buffer matches its geometry and its channel count is supported.
pub fn validate(frame: &Frame, origin: &str) -> Result<(), DataError> {
    if frame.channels != 1 && frame.channels != 3 {
        return Err(DataError::format(
            origin,
            format!("{} channels (need 1 or 3)", frame.channels),
        ));
    }
    if frame.width == 0 || frame.height == 0 || frame.pixels.len() != frame.byte_len() {
        return Err(DataError::format(
            origin,
            format!(
                "frame {}x{}x{} holds {} bytes, expected {}",
                frame.width,
                frame.height,
                frame.channels,
                frame.pixels.len(),
                frame.byte_len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(w: usize, h: usize, c: usize, f: impl Fn(usize, usize, usize) -> u8) -> Frame {
        let mut pixels = Vec::with_capacity(w * h * c);
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    pixels.push(f(x, y, ch));
                }
            }
        }
        Frame {
            width: w,
            height: h,
            channels: c,
            pixels,
            label: None,
        }
    }

    #[test]
    fn gray_to_colour_replicates_and_colour_to_gray_takes_luma() {
        let g = frame(2, 1, 1, |x, _, _| 10 + x as u8 * 100);
        let rgb = convert_channels(g.clone(), 3).unwrap();
        assert_eq!(rgb.pixels, vec![10, 10, 10, 110, 110, 110]);
        assert_eq!(convert_channels(rgb, 1).unwrap(), g);
        let red = frame(1, 1, 3, |_, _, c| if c == 0 { 255 } else { 0 });
        assert_eq!(convert_channels(red, 1).unwrap().pixels, vec![76]); // 0.299 * 255
        let two = frame(1, 1, 2, |_, _, _| 0);
        assert!(convert_channels(two, 3).is_err());
    }

    #[test]
    fn identity_crop_resize_reproduces_pixels_in_chw() {
        let f = frame(4, 3, 3, |x, y, c| (x * 20 + y * 60 + c) as u8);
        let mut out = vec![0.0; 3 * 3 * 4];
        crop_resize(&f, CropBox::full(4, 3), 3, 4, &mut out, &mut Vec::new());
        for c in 0..3 {
            for y in 0..3 {
                for x in 0..4 {
                    let want = (x * 20 + y * 60 + c) as f32 / 255.0;
                    assert!((out[c * 12 + y * 4 + x] - want).abs() < 1e-5);
                }
            }
        }
    }

    #[test]
    fn downscale_averages_instead_of_aliasing() {
        // A 1-pixel checkerboard shrunk 4x must come out mid-gray, not black or white.
        let f = frame(16, 16, 1, |x, y, _| if (x + y) % 2 == 0 { 255 } else { 0 });
        let mut out = vec![0.0; 16];
        crop_resize(&f, CropBox::full(16, 16), 4, 4, &mut out, &mut Vec::new());
        for v in out {
            assert!((v - 0.5).abs() < 0.1, "{v}");
        }
    }

    #[test]
    fn crop_reads_only_inside_the_box() {
        // Left half black, right half white; cropping the right half gives all white.
        let f = frame(8, 4, 1, |x, _, _| if x >= 4 { 255 } else { 0 });
        let crop = CropBox {
            left: 4.0,
            top: 0.0,
            width: 4.0,
            height: 4.0,
        };
        let mut out = vec![0.0; 4];
        crop_resize(&f, crop, 2, 2, &mut out, &mut Vec::new());
        assert!(out.iter().all(|&v| (v - 1.0).abs() < 1e-6), "{out:?}");
    }

    #[test]
    fn shrink_keeps_aspect_and_bounds_the_short_side() {
        let f = frame(64, 32, 3, |x, _, _| x as u8);
        let s = shrink_to_fit(f.clone(), 8);
        assert_eq!((s.width, s.height, s.channels), (16, 8, 3));
        assert_eq!(s.pixels.len(), s.byte_len());
        assert_eq!(shrink_to_fit(f.clone(), 32), f);
    }
}
