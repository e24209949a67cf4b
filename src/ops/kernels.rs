//! Host-side data-movement kernels for im2col convolution (f32, NCHW).
//!
//! The arithmetic of a convolution goes through the backend's matmul; only the patch
//! gather (`im2col`) and its adjoint scatter (`col2im`) run here, on plain slices, because
//! no burn primitive expresses them cheaply: burn's `unfold4d` with padding is itself a
//! convolution, and a `select`-based gather has a sequential, per-element backward on flex.

use rayon::prelude::*;

/// Geometry of one 2-D convolution (dilation 1, groups 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvGeom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
    pub ho: usize,
    pub wo: usize,
}

impl ConvGeom {
    /// Builds the geometry; output size follows the usual floor formula.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        [n, c, h, w]: [usize; 4],
        [kh, kw]: [usize; 2],
        [sh, sw]: [usize; 2],
        [ph, pw]: [usize; 2],
    ) -> Self {
        let ho = (h + 2 * ph - kh) / sh + 1;
        let wo = (w + 2 * pw - kw) / sw + 1;
        Self {
            n,
            c,
            h,
            w,
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
            ho,
            wo,
        }
    }

    /// Rows of the column matrix of one sample: `C * KH * KW`.
    pub fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Output positions per sample: `HO * WO`.
    pub fn p(&self) -> usize {
        self.ho * self.wo
    }

    /// Range of output indices `o` (along one axis) whose input index
    /// `o * s + k - pad` lies in `0..len`.
    #[inline]
    fn valid_range(len: usize, out: usize, s: usize, k: usize, pad: usize) -> (usize, usize) {
        // o * s + k >= pad  <=>  o >= ceil((pad - k) / s)
        let lo = if k >= pad { 0 } else { (pad - k).div_ceil(s) };
        // o * s + k - pad <= len - 1  <=>  o <= (len - 1 + pad - k) / s
        let hi = if len + pad > k {
            ((len - 1 + pad - k) / s + 1).min(out)
        } else {
            0
        };
        (lo.min(hi), hi)
    }
}

/// Gathers patches: `x` is `[N, C, H, W]`, the result `[N, C*KH*KW, HO*WO]` with row
/// `(c*KH + i)*KW + j`, so a weight `[CO, C, KH, KW]` reshaped to `[CO, K]` multiplies it
/// directly. Padding reads as zero.
pub(crate) fn im2col(x: &[f32], g: &ConvGeom) -> Vec<f32> {
    let (k, p) = (g.k(), g.p());
    let plane = g.h * g.w;
    let mut cols = vec![0.0f32; g.n * k * p];
    // One task per (sample, channel): enough tasks for 2..16 threads, each writes a
    // disjoint block of KH*KW rows.
    cols.par_chunks_mut(g.kh * g.kw * p)
        .enumerate()
        .for_each(|(nc, dst)| {
            let src = &x[nc * plane..(nc + 1) * plane];
            for i in 0..g.kh {
                let (oh_lo, oh_hi) = ConvGeom::valid_range(g.h, g.ho, g.sh, i, g.ph);
                for j in 0..g.kw {
                    let (ow_lo, ow_hi) = ConvGeom::valid_range(g.w, g.wo, g.sw, j, g.pw);
                    let row = &mut dst[(i * g.kw + j) * p..(i * g.kw + j + 1) * p];
                    for oh in oh_lo..oh_hi {
                        let ih = oh * g.sh + i - g.ph;
                        let srow = &src[ih * g.w..(ih + 1) * g.w];
                        let drow = &mut row[oh * g.wo..(oh + 1) * g.wo];
                        if ow_lo >= ow_hi {
                            continue;
                        }
                        let iw0 = ow_lo * g.sw + j - g.pw;
                        if g.sw == 1 {
                            drow[ow_lo..ow_hi].copy_from_slice(&srow[iw0..iw0 + (ow_hi - ow_lo)]);
                        } else {
                            for (t, d) in drow[ow_lo..ow_hi].iter_mut().enumerate() {
                                *d = srow[iw0 + t * g.sw];
                            }
                        }
                    }
                }
            }
        });
    cols
}

/// Adjoint of [`im2col`]: scatters-and-adds `[N, C*KH*KW, HO*WO]` columns back into an
/// `[N, C, H, W]` image (the input gradient of a convolution).
pub(crate) fn col2im(cols: &[f32], g: &ConvGeom) -> Vec<f32> {
    let p = g.p();
    let plane = g.h * g.w;
    let kk = g.kh * g.kw;
    let mut x = vec![0.0f32; g.n * g.c * plane];
    // Each (sample, channel) image plane only receives from its own KH*KW rows, so the
    // planes can be filled in parallel without atomics.
    x.par_chunks_mut(plane).enumerate().for_each(|(nc, dst)| {
        let src = &cols[nc * kk * p..(nc + 1) * kk * p];
        for i in 0..g.kh {
            let (oh_lo, oh_hi) = ConvGeom::valid_range(g.h, g.ho, g.sh, i, g.ph);
            for j in 0..g.kw {
                let (ow_lo, ow_hi) = ConvGeom::valid_range(g.w, g.wo, g.sw, j, g.pw);
                if ow_lo >= ow_hi {
                    continue;
                }
                let row = &src[(i * g.kw + j) * p..(i * g.kw + j + 1) * p];
                for oh in oh_lo..oh_hi {
                    let ih = oh * g.sh + i - g.ph;
                    let drow = &mut dst[ih * g.w..(ih + 1) * g.w];
                    let srow = &row[oh * g.wo + ow_lo..oh * g.wo + ow_hi];
                    let iw0 = ow_lo * g.sw + j - g.pw;
                    if g.sw == 1 {
                        for (d, s) in drow[iw0..iw0 + srow.len()].iter_mut().zip(srow) {
                            *d += *s;
                        }
                    } else {
                        for (t, s) in srow.iter().enumerate() {
                            drow[iw0 + t * g.sw] += *s;
                        }
                    }
                }
            }
        }
    });
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Naive reference gather, for checking index arithmetic.
    fn im2col_naive(x: &[f32], g: &ConvGeom) -> Vec<f32> {
        let (k, p) = (g.k(), g.p());
        let mut out = vec![0.0; g.n * k * p];
        for n in 0..g.n {
            for c in 0..g.c {
                for i in 0..g.kh {
                    for j in 0..g.kw {
                        let r = (c * g.kh + i) * g.kw + j;
                        for oh in 0..g.ho {
                            for ow in 0..g.wo {
                                let ih = (oh * g.sh + i) as isize - g.ph as isize;
                                let iw = (ow * g.sw + j) as isize - g.pw as isize;
                                if ih >= 0 && iw >= 0 && (ih as usize) < g.h && (iw as usize) < g.w
                                {
                                    out[(n * k + r) * p + oh * g.wo + ow] = x[((n * g.c + c)
                                        * g.h
                                        + ih as usize)
                                        * g.w
                                        + iw as usize];
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn im2col_matches_naive_and_col2im_is_adjoint() {
        for &(shape, ksz, s, pad) in &[
            ([2, 3, 7, 5], [3, 3], [1, 1], [1, 1]),
            ([1, 2, 8, 9], [3, 3], [2, 2], [1, 1]),
            ([2, 1, 6, 6], [1, 1], [2, 2], [0, 0]),
            ([1, 2, 5, 7], [3, 2], [2, 1], [0, 1]),
            ([1, 1, 4, 4], [3, 3], [3, 3], [2, 2]),
        ] {
            let g = ConvGeom::new(shape, ksz, s, pad);
            let x: Vec<f32> = (0..shape.iter().product::<usize>())
                .map(|i| ((i * 37) % 11) as f32 - 5.0)
                .collect();
            let cols = im2col(&x, &g);
            assert_eq!(cols, im2col_naive(&x, &g), "{g:?}");
            // <im2col(x), y> == <x, col2im(y)>
            let y: Vec<f32> = (0..cols.len()).map(|i| ((i * 13) % 7) as f32 - 3.0).collect();
            let lhs: f64 = cols.iter().zip(&y).map(|(a, b)| (*a * *b) as f64).sum();
            let back = col2im(&y, &g);
            let rhs: f64 = x.iter().zip(&back).map(|(a, b)| (*a * *b) as f64).sum();
            assert!((lhs - rhs).abs() < 1e-6 * lhs.abs().max(1.0), "{g:?}");
        }
    }
}
