//! Convolution forward as an implicit GEMM on x86-64 with AVX2 + FMA: no im2col.
//!
//! Why: the im2col path copies each sample's patches into a `[K, P]` column matrix (9x the
//! input for a 3x3 kernel) and the GEMM then packs that matrix once more. With as few as 32
//! output channels the two copies are a large part of the work (the 28x28 3x3 layers ran at
//! ~77 % of the sgemm roof, the stride-2 ones at 54-63 %). Here the micro-kernel reads the
//! input in place:
//!
//! * the sample is copied once into zero-padded, stride-phase-split planes: phase `(a, b)`
//!   of channel `c` holds `xpad[u·SH + a, v·SW + b]`, so tap `(i, j)` of output `(oh, ow)` is
//!   element `(oh + i/SH, ow + j/SW)` of phase `(i%SH, j%SW)`: every tap `k` is one fixed
//!   offset `off[k]` from the output's own base `oh·WP + ow`, whatever the stride;
//! * the weight is packed once per call as `[CO/16][K][16]`;
//! * a 6x16 register tile (6 output positions x 16 output channels, 12 accumulators) runs
//!   the whole `K` sum: per tap, two vector loads of weights, six broadcasts of inputs, twelve
//!   FMAs, then the tile is stored into the NCHW output.
//!
//! Positions are the output's own (no garbage columns, unlike the shifted-row trick), so
//! 7x7 maps waste nothing; only a tail of fewer than 6 positions is computed on repeated
//! positions and not stored. Other CPUs (no AVX2, aarch64) keep the im2col + `gemm` path,
//! whose micro-kernels are NEON/AVX as the CPU allows.

use rayon::prelude::*;

use super::kernels::{ConvGeom, assume_init, uninit, with_scratch};

/// Output positions per register tile (broadcast operand).
const MR: usize = 6;
/// Output channels per register tile (two 8-lane vectors).
const NR: usize = 16;

/// Whether this CPU runs the implicit GEMM (x86-64 with AVX2 and FMA).
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::kernels::has_avx2()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the implicit GEMM beats im2col + `gemm` on this geometry. Each 6x16 tile ends
/// with a scattered store of 96 outputs, paid for by its `K`-long sum: measured at batch
/// 128, `K = 9` (a 1-channel stem) ran at 0.60x the im2col path, `K = 32` at 0.87x, `K = 64`
/// at 1.06x and `K ≥ 288` (3x3 kernels on ≥ 32 channels) at 1.13-1.26x. A pointwise
/// convolution needs no gather at all on the im2col path, so it stays there.
pub(crate) fn pays_off(g: &ConvGeom) -> bool {
    g.k() >= 64 && !g.is_pointwise()
}

/// Where the taps of one sample lie once it is split into padded phase planes.
struct PhaseLayout {
    /// Phases per axis actually used (`min(stride, kernel)`): a 1x1 stride-2 kernel only
    /// ever reads phase (0, 0).
    nph: usize,
    npw: usize,
    /// Rows and columns of each phase plane.
    hp: usize,
    wp: usize,
    /// Offset of every tap `k = (c·KH + i)·KW + j` from its output's base `oh·WP + ow`.
    tap_offsets: Vec<u32>,
    /// Base `oh·WP + ow` of every output position `p = oh·WO + ow`.
    position_bases: Vec<u32>,
}

impl PhaseLayout {
    fn new(g: &ConvGeom) -> Self {
        let (nph, npw) = (g.sh.min(g.kh), g.sw.min(g.kw));
        let hp = g.ho + (g.kh - 1) / g.sh;
        let wp = g.wo + (g.kw - 1) / g.sw;
        let plane = hp * wp;
        let mut tap_offsets = Vec::with_capacity(g.k());
        for c in 0..g.c {
            for i in 0..g.kh {
                for j in 0..g.kw {
                    let phase = (c * nph + i % g.sh) * npw + j % g.sw;
                    tap_offsets.push((phase * plane + (i / g.sh) * wp + j / g.sw) as u32);
                }
            }
        }
        let position_bases = (0..g.ho)
            .flat_map(|oh| (0..g.wo).map(move |ow| (oh * wp + ow) as u32))
            .collect();
        Self {
            nph,
            npw,
            hp,
            wp,
            tap_offsets,
            position_bases,
        }
    }

    /// Floats of one sample's phase planes.
    fn len(&self, c: usize) -> usize {
        c * self.nph * self.npw * self.hp * self.wp
    }

    /// Writes every phase plane of sample `x_n` (`[C, H, W]`) into `planes`, zero where the
    /// padded position falls outside the image.
    fn fill(&self, x_n: &[f32], g: &ConvGeom, planes: &mut [f32]) {
        let plane = self.hp * self.wp;
        let mut chunks = planes.chunks_exact_mut(plane);
        for c in 0..g.c {
            let x_c = &x_n[c * g.h * g.w..(c + 1) * g.h * g.w];
            for a in 0..self.nph {
                for b in 0..self.npw {
                    let dst = chunks.next().expect("planes sized by len()");
                    // Columns v whose source column v·SW + b − PW lies in 0..W.
                    let (v_lo, v_hi) = valid(g.w, self.wp, g.sw, b, g.pw);
                    for (u, row) in dst.chunks_exact_mut(self.wp).enumerate() {
                        let r = u * g.sh + a;
                        if r < g.ph || r - g.ph >= g.h || v_lo >= v_hi {
                            row.fill(0.0);
                            continue;
                        }
                        let src = &x_c[(r - g.ph) * g.w..(r - g.ph + 1) * g.w];
                        row[..v_lo].fill(0.0);
                        row[v_hi..].fill(0.0);
                        let first = v_lo * g.sw + b - g.pw;
                        if g.sw == 1 {
                            row[v_lo..v_hi].copy_from_slice(&src[first..first + v_hi - v_lo]);
                        } else {
                            for (d, s) in row[v_lo..v_hi]
                                .iter_mut()
                                .zip(src[first..].iter().step_by(g.sw))
                            {
                                *d = *s;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Range of plane indices `v < len_p` whose source `v·s + phase − pad` lies in `0..len`.
fn valid(len: usize, len_p: usize, s: usize, phase: usize, pad: usize) -> (usize, usize) {
    let lo = pad.saturating_sub(phase).div_ceil(s);
    let hi = if len + pad > phase {
        ((len + pad - phase - 1) / s + 1).min(len_p)
    } else {
        0
    };
    (lo.min(hi), hi)
}

/// The weight `[CO, K]` packed as `[ceil(CO/16)][K][16]`, zero past `CO`.
fn pack_weight(w: &[f32], co: usize, k: usize) -> Vec<f32> {
    let blocks = co.div_ceil(NR);
    let mut packed = vec![0.0f32; blocks * k * NR];
    for (o, row) in w.chunks_exact(k).take(co).enumerate() {
        let (blk, lane) = (o / NR, o % NR);
        let dst = &mut packed[blk * k * NR..(blk + 1) * k * NR];
        for (kk, v) in row.iter().enumerate() {
            dst[kk * NR + lane] = *v;
        }
    }
    packed
}

/// Forward `y[n] = conv(x[n], w)` (`x` `[N, C, H, W]`, `w` `[CO, C, KH, KW]` viewed as
/// `[CO, K]`), returns `[N, CO, HO·WO]`. The caller checks [`available`].
pub(crate) fn conv_forward(x: &[f32], w: &[f32], co: usize, g: &ConvGeom) -> Vec<f32> {
    assert!(available(), "implicit GEMM needs AVX2 and FMA");
    let (k, p) = (g.k(), g.p());
    assert_eq!(w.len(), co * k, "conv weight is not [CO, K]");
    assert!(p > 0 && k > 0, "conv with an empty output or kernel: {g:?}");
    let layout = PhaseLayout::new(g);
    let x_len = g.c * g.h * g.w;
    assert_eq!(x.len(), g.n * x_len, "conv input is not [N, C, H, W]");
    let planes_len = layout.len(g.c);
    assert!(
        u32::try_from(planes_len).is_ok(),
        "conv sample too large for 32-bit offsets"
    );
    let packed = pack_weight(w, co, k);
    let mut y = uninit(g.n * co * p);
    y.par_chunks_mut(co * p).enumerate().for_each(|(n, y_n)| {
        with_scratch(planes_len, |planes| {
            layout.fill(&x[n * x_len..(n + 1) * x_len], g, planes);
            for blk in 0..co.div_ceil(NR) {
                let a = &packed[blk * k * NR..(blk + 1) * k * NR];
                let lanes = NR.min(co - blk * NR);
                for p0 in (0..p).step_by(MR) {
                    let rows = MR.min(p - p0);
                    // A short last tile repeats its last position (computed, not stored).
                    let bases: [u32; MR] =
                        std::array::from_fn(|m| layout.position_bases[p0 + m.min(rows - 1)]);
                    let mut tile = [[0.0f32; NR]; MR];
                    // SAFETY: AVX2 and FMA are present (asserted above); `a` holds K·NR
                    // floats and every base + tap offset indexes `planes` (both are built
                    // from the same layout: max base + max offset < planes_len).
                    unsafe {
                        tile_6x16(
                            a.as_ptr(),
                            planes.as_ptr(),
                            &bases,
                            &layout.tap_offsets,
                            &mut tile,
                        )
                    };
                    for lane in 0..lanes {
                        let dst = &mut y_n[(blk * NR + lane) * p + p0..][..rows];
                        for (m, d) in dst.iter_mut().enumerate() {
                            d.write(tile[m][lane]);
                        }
                    }
                }
            }
        });
    });
    // SAFETY: every (channel, position) of every sample was written by the tile stores.
    unsafe { assume_init(y) }
}

/// One 6x16 register tile: `tile[m][o] = Σ_k a[k][o] · planes[bases[m] + offs[k]]`.
///
/// # Safety
/// The CPU must have AVX2 and FMA; `a` must hold `offs.len()·16` floats and
/// `planes[bases[m] + offs[k]]` must be in bounds for every `m`, `k`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_6x16(
    a: *const f32,
    planes: *const f32,
    bases: &[u32; MR],
    offs: &[u32],
    tile: &mut [[f32; NR]; MR],
) {
    use std::arch::x86_64::*;
    // SAFETY: the caller guarantees the feature set and every index (see above).
    unsafe {
        let x: [*const f32; MR] = std::array::from_fn(|m| planes.add(bases[m] as usize));
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        for (kk, &off) in offs.iter().enumerate() {
            let off = off as usize;
            let a0 = _mm256_loadu_ps(a.add(kk * NR));
            let a1 = _mm256_loadu_ps(a.add(kk * NR + 8));
            for m in 0..MR {
                let b = _mm256_broadcast_ss(&*x[m].add(off));
                acc[m][0] = _mm256_fmadd_ps(b, a0, acc[m][0]);
                acc[m][1] = _mm256_fmadd_ps(b, a1, acc[m][1]);
            }
        }
        for m in 0..MR {
            _mm256_storeu_ps(tile[m].as_mut_ptr(), acc[m][0]);
            _mm256_storeu_ps(tile[m].as_mut_ptr().add(8), acc[m][1]);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn tile_6x16(
    _a: *const f32,
    _planes: *const f32,
    _bases: &[u32; MR],
    _offs: &[u32],
    _tile: &mut [[f32; NR]; MR],
) {
    unreachable!("implicit GEMM is only dispatched on x86-64 with AVX2")
}

#[cfg(test)]
mod tests {
    use super::super::kernels::conv_forward_im2col;
    use super::*;

    fn data(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i + seed) * 2654435761) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    fn close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (j, (a, b)) in got.iter().zip(want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                "{what}, element {j}: implicit {a}, im2col {b}"
            );
        }
    }

    /// Kernels, strides and paddings the trunks use, and awkward ones: channel counts off
    /// the 16-lane block, position and tap counts off the 6-row tile, padding wider than the
    /// stride, non-square everything. `([n, c, h, w], [kh, kw], [sh, sw], [ph, pw], co)`.
    #[allow(clippy::type_complexity)]
    const CASES: &[([usize; 4], [usize; 2], [usize; 2], [usize; 2], usize)] = &[
        ([2, 3, 8, 8], [3, 3], [1, 1], [1, 1], 16),
        ([2, 1, 7, 7], [3, 3], [1, 1], [1, 1], 32),
        ([3, 5, 9, 7], [3, 3], [2, 2], [1, 1], 20),
        ([2, 4, 10, 10], [1, 1], [2, 2], [0, 0], 8),
        ([1, 6, 6, 6], [1, 1], [1, 1], [0, 0], 33),
        ([2, 2, 11, 9], [5, 5], [1, 1], [2, 2], 17),
        ([1, 3, 12, 13], [3, 2], [2, 3], [2, 0], 5),
        ([2, 4, 8, 8], [7, 7], [2, 2], [3, 3], 16),
        ([1, 2, 5, 5], [3, 3], [1, 1], [0, 0], 3),
        ([5, 8, 7, 7], [3, 3], [1, 1], [1, 1], 48),
    ];

    /// The implicit-GEMM forward agrees with im2col + `gemm`.
    #[test]
    fn implicit_forward_matches_im2col() {
        if !available() {
            eprintln!("no AVX2 + FMA: the implicit GEMM is not used on this CPU");
            return;
        }
        for (i, &(xd, kd, s, pad, co)) in CASES.iter().enumerate() {
            let g = ConvGeom::new(xd, kd, s, pad);
            let x = data(xd.iter().product(), i);
            let w = data(co * g.k(), 7 * i + 1);
            let want = conv_forward_im2col(&x, &w, co, &g);
            let got = conv_forward(&x, &w, co, &g);
            close(&got, &want, &format!("forward, case {i} ({g:?}, co {co})"));
        }
    }
}
