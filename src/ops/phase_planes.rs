//! A convolution input copied into zero-padded, stride-phase-split planes, the layout the
//! implicit GEMM ([`super::implicit_gemm`]) reads every tap from at a fixed offset, and the
//! row moves that write them.

use super::implicit_gemm::available;
#[cfg(target_arch = "x86_64")]
use super::kernels::has_avx2;
use super::kernels::{ConvGeom, NormRelu, norm_relu, simd_dispatch};

/// Where the taps of one sample lie once it is split into padded phase planes.
pub(super) struct PhaseLayout {
    /// Phases per axis actually used (`min(stride, kernel)`): a 1x1 stride-2 kernel only
    /// ever reads phase (0, 0).
    pub(super) nph: usize,
    pub(super) npw: usize,
    /// Rows and columns of each phase plane.
    pub(super) hp: usize,
    pub(super) wp: usize,
    /// Offset of every tap `k = (c·KH + i)·KW + j` from its output's base `oh·WP + ow`.
    pub(super) tap_offsets: Vec<u32>,
    /// Base `oh·WP + ow` of every output position `p = oh·WO + ow`.
    pub(super) position_bases: Vec<u32>,
}

impl PhaseLayout {
    pub(super) fn new(g: &ConvGeom) -> Self {
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
    pub(super) fn len(&self, c: usize) -> usize {
        c * self.nph * self.npw * self.hp * self.wp
    }

    /// Writes every phase plane of sample `x_n` (`[C, H, W]`) into `planes`, zero where the
    /// padded position falls outside the image.
    /// With `norm`, the copied values are normalised (padding stays zero).
    pub(super) fn fill(
        &self,
        x_n: &[f32],
        g: &ConvGeom,
        planes: &mut [f32],
        norm: Option<NormRelu>,
    ) {
        let layout = self;
        simd_dispatch!(|layout: &PhaseLayout,
                        x_n: &[f32],
                        g: &ConvGeom,
                        planes: &mut [f32],
                        norm: Option<NormRelu>|
         -> () { layout.fill_rows(x_n, g, planes, norm) })
    }

    /// [`PhaseLayout::fill`]'s loop, inlined into a copy compiled for AVX2 where the CPU
    /// has it, so the row moves below become inline vector moves. Rows the explicit vector
    /// moves fit ([`row_vector`]) go through those: the generic row moves took 6.3 cycles
    /// per 8 floats at stride 1 and 12-26 at stride 2 (L1-resident data), ~10 % of a 28 px
    /// layer's forward; these 1.0-1.4x and 1.3-1.9x less. Every body row of a phase plane
    /// has the same shape, so it is checked once per plane ([`rows_vector`]): checked row by
    /// row, the bookkeeping took as long as the moves (a 28 px stride-2 sample, sources in
    /// L2: 10.6-12.4 µs per sample against 5.9-6.2).
    #[inline(always)]
    fn fill_rows(&self, x_n: &[f32], g: &ConvGeom, planes: &mut [f32], norm: Option<NormRelu>) {
        let (wp, plane) = (self.wp, self.hp * self.wp);
        let mut chunks = planes.chunks_exact_mut(plane);
        for c in 0..g.c {
            let norm_c = norm.map(|nr| (nr.scale[c], nr.shift[c]));
            for a in 0..self.nph {
                // Plane rows u whose source row u·SH + a − PH lies in 0..H, and likewise
                // columns: the same for every row of the phase, so worked out once here.
                let (u_lo, u_hi) = valid(g.h, self.hp, g.sh, a, g.ph);
                for b in 0..self.npw {
                    let dst = chunks.next().expect("planes sized by len()");
                    let (v_lo, v_hi) = valid(g.w, wp, g.sw, b, g.pw);
                    let (top, rest) = dst.split_at_mut(u_lo * wp);
                    let (body, bottom) = rest.split_at_mut((u_hi - u_lo) * wp);
                    row_moves::zero(top);
                    row_moves::zero(bottom);
                    if v_lo >= v_hi {
                        row_moves::zero(body);
                        continue;
                    }
                    let first_row = (c * g.h + u_lo * g.sh + a - g.ph) * g.w;
                    let first = first_row + v_lo * g.sw + b - g.pw;
                    if rows_vector(body, wp, v_lo..v_hi, x_n, first, g.sh * g.w, g.sw, norm_c) {
                        continue;
                    }
                    for (i, row) in body.chunks_exact_mut(wp).enumerate() {
                        let row_start = first_row + i * g.sh * g.w;
                        let first = row_start + v_lo * g.sw + b - g.pw;
                        // The vector moves may read on past the row, within the sample.
                        if row_vector(row, v_lo..v_hi, &x_n[first..], g.sw, norm_c) {
                            continue;
                        }
                        let (body, src) = (v_lo..v_hi, &x_n[first..row_start + g.w]);
                        match norm_c {
                            None => row_moves::padded(row, body, src, g.sw, |v| v),
                            // Normalised in the same vector moves (a pass of its own over
                            // each row cost more than it saved).
                            Some((s, t)) => {
                                row_moves::padded(row, body, src, g.sw, move |v| norm_relu(v, s, t))
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One plane row: zero, then `row[lo + i] = f(src[i·S])` for `i < n`, `f` the identity or
/// with `NORM` [`norm_relu`] by `(a, b)`, bit for bit (`v·a + b` as a multiply then an
/// add, as Rust compiles the scalar one, and `max(t, 0)`, which gives `+0` for `t ≤ 0` and
/// for NaN as its select does). Explicit vector moves: two zero vectors for the padding,
/// then the body in 8-float pieces, the last one moved back to end at the body's end; at
/// stride 2 a piece is two loads deinterleaved by one shuffle and one permute. A body of 4 to
/// 7 floats (the rows of 7x7 maps, and of 14x14 ones at stride 2) goes in two 4-float pieces.
///
/// # Safety
/// The CPU must have AVX2; `S` is 1 or 2, `row.len() ≥ 8`, `n ≥ 4`, `lo ≤ 8`,
/// `row.len() − (lo + n) ≤ 8` and `src` must hold `S·n` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_avx2<const S: usize, const NORM: bool>(
    row: &mut [f32],
    lo: usize,
    n: usize,
    src: *const f32,
    (a, b): (f32, f32),
) {
    use std::arch::x86_64::*;
    let wp = row.len();
    let dst = row.as_mut_ptr();
    // SAFETY: every store lies in row[0..wp] and every load in src[0..S·n] (the contract).
    unsafe {
        let zero = _mm256_setzero_ps();
        let (va, vb) = (_mm256_set1_ps(a), _mm256_set1_ps(b));
        // The padding: the body's stores below overwrite what they cover.
        _mm256_storeu_ps(dst, zero);
        _mm256_storeu_ps(dst.add(wp - 8), zero);
        if n < 8 {
            let (zero, va, vb) = (_mm_setzero_ps(), _mm_set1_ps(a), _mm_set1_ps(b));
            for at in [0, n - 4] {
                let mut v = if S == 1 {
                    _mm_loadu_ps(src.add(at))
                } else {
                    let (p, q) = (
                        _mm_loadu_ps(src.add(2 * at)),
                        _mm_loadu_ps(src.add(2 * at + 4)),
                    );
                    _mm_shuffle_ps::<0x88>(p, q)
                };
                if NORM {
                    v = _mm_max_ps(_mm_add_ps(_mm_mul_ps(v, va), vb), zero);
                }
                _mm_storeu_ps(dst.add(lo + at), v);
            }
            return;
        }
        let mut j = 0;
        loop {
            let at = j.min(n - 8);
            let mut v = if S == 1 {
                _mm256_loadu_ps(src.add(at))
            } else {
                let (p, q) = (
                    _mm256_loadu_ps(src.add(2 * at)),
                    _mm256_loadu_ps(src.add(2 * at + 8)),
                );
                // [p0 p2 q0 q2 | p4 p6 q4 q6], then the 64-bit pairs in order 0, 2, 1, 3.
                let evens = _mm256_shuffle_ps::<0x88>(p, q);
                _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(evens)))
            };
            if NORM {
                v = _mm256_max_ps(_mm256_add_ps(_mm256_mul_ps(v, va), vb), zero);
            }
            _mm256_storeu_ps(dst.add(lo + at), v);
            if at == n - 8 {
                break;
            }
            j += 8;
        }
    }
}

/// One row through [`rows_vector`]: `row[body] = f(src[0]), f(src[stride]), …` and zero on
/// either side. Returns whether it did; otherwise nothing was written.
#[inline(always)]
fn row_vector(
    row: &mut [f32],
    body: std::ops::Range<usize>,
    src: &[f32],
    stride: usize,
    norm: Option<(f32, f32)>,
) -> bool {
    let wp = row.len();
    rows_vector(row, wp, body, src, 0, 0, stride, norm)
}

/// Every row of `body` (rows `wp` long) as [`row_moves::padded`] does it, with `f` the
/// identity or [`norm_relu`] by `norm`: row `i` gets `f(src[first + i·step + j·stride])` for
/// `j < cols.len()` at `cols`, zeros on either side; through [`row_avx2`] where the CPU and
/// the rows' shape allow it (AVX2, stride 1 or 2, a body of at least 4 floats in rows of at
/// least 8, pads of at most 8, and `stride·n` floats of `src` for each row: at stride 2 one
/// past the last it needs, so a row's source may run on past it). The shape is checked once
/// for all rows. Returns whether it did; otherwise nothing was written.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn rows_vector(
    body: &mut [f32],
    wp: usize,
    cols: std::ops::Range<usize>,
    src: &[f32],
    first: usize,
    step: usize,
    stride: usize,
    norm: Option<(f32, f32)>,
) -> bool {
    let (lo, n) = (cols.start, cols.len());
    let rows = if wp >= 8 { body.len() / wp } else { 0 };
    let fits = (1..=2).contains(&stride)
        && rows > 0
        && body.len() == rows * wp
        && n >= 4
        && lo <= 8
        && cols.end <= wp
        && wp - cols.end <= 8
        // The last row reads the furthest.
        && src.len() >= first + (rows - 1) * step + stride * n;
    if !fits || !available() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let ab = norm.unwrap_or((1.0, 0.0));
        // SAFETY: AVX2 is present (`available`); every row has the shape `row_avx2`
        // requires and reads within `src` (checked just above for the last, furthest row).
        unsafe {
            let src = src.as_ptr().add(first);
            for (i, row) in body.chunks_exact_mut(wp).enumerate() {
                let s = src.add(i * step);
                match (stride, norm.is_some()) {
                    (1, false) => row_avx2::<1, false>(row, lo, n, s, ab),
                    (1, true) => row_avx2::<1, true>(row, lo, n, s, ab),
                    (_, false) => row_avx2::<2, false>(row, lo, n, s, ab),
                    (_, true) => row_avx2::<2, true>(row, lo, n, s, ab),
                }
            }
        }
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (norm, step);
        unreachable!("the implicit GEMM is only available on x86-64")
    }
}

/// A zero-padded copy of a plane's top-left `rows x cols` into a wider plane, at row `top`
/// and column `left` of rows `width` long (the input gradient's padded `dy`).
pub(super) struct PaddedRows {
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) src_width: usize,
    pub(super) top: usize,
    pub(super) left: usize,
    pub(super) width: usize,
}

impl PaddedRows {
    /// Writes every float of `dst`: the source where it lands, zero elsewhere.
    pub(super) fn fill(&self, src: &[f32], dst: &mut [f32]) {
        let pad = self;
        simd_dispatch!(|pad: &PaddedRows, src: &[f32], dst: &mut [f32]| -> () {
            let (w, body) = (pad.width, pad.left..pad.left + pad.cols);
            let rows = pad.rows.min((dst.len() / w).saturating_sub(pad.top));
            if rows > 0 {
                let (top, rest) = dst.split_at_mut(pad.top * w);
                let (middle, bottom) = rest.split_at_mut(rows * w);
                if rows_vector(middle, w, body.clone(), src, 0, pad.src_width, 1, None) {
                    row_moves::zero(top);
                    row_moves::zero(bottom);
                    return;
                }
            }
            for (u, row) in dst.chunks_mut(pad.width).enumerate() {
                let Some(r) = u.checked_sub(pad.top).filter(|r| *r < pad.rows) else {
                    row_moves::zero(row);
                    continue;
                };
                let body = pad.left..pad.left + pad.cols;
                let src = &src[r * pad.src_width..];
                if !row_vector(row, body.clone(), src, 1, None) {
                    row_moves::padded(row, body, src, 1, |v| v);
                }
            }
        })
    }
}

/// Moves of plane rows (tens of floats) in fixed-size pieces. Through `copy_from_slice` and
/// `fill` each row was a `memcpy` / `memset` call, and the calls cost more than the moves
/// (perf: the fill and those calls took ~7 % of a 28 px training step). A row of `n` is
/// covered by pieces of 8 (or 4, 2, 1 when shorter), the last one moved back to end at `n`,
/// overlapping its neighbour: no scalar tail, no masked store (slow on AMD), and no affine
/// loop that LLVM would turn back into a library call.
mod row_moves {
    /// Start of every `W`-float piece covering `0..n` (`n ≥ W`).
    #[inline(always)]
    fn starts<const W: usize>(n: usize) -> impl Iterator<Item = usize> {
        (0..n.div_ceil(W)).map(move |i| (i * W).min(n - W))
    }

    /// `dst[at..at + W] = f(src[at..at + W])`, or zeros without `src`.
    #[inline(always)]
    fn piece<const W: usize>(
        dst: &mut [f32],
        src: Option<&[f32]>,
        f: impl Fn(f32) -> f32,
        at: usize,
    ) {
        let d: &mut [f32; W] = (&mut dst[at..at + W]).try_into().expect("W floats");
        *d = src.map_or([0.0; W], |s| {
            let s: &[f32; W] = s[at..at + W].try_into().expect("W floats");
            s.map(&f)
        });
    }

    /// `dst[at + l] = f(src[2·(at + l)])` for `l < W`.
    #[inline(always)]
    fn every_other<const W: usize>(
        dst: &mut [f32],
        src: &[f32],
        f: impl Fn(f32) -> f32,
        at: usize,
    ) {
        let (d, s) = (&mut dst[at..at + W], &src[2 * at..2 * at + 2 * W]);
        for l in 0..W {
            d[l] = f(s[2 * l]);
        }
    }

    /// Calls `$piece::<W>(args.., at)` for every piece covering `0..$n`, `W` the widest of 8,
    /// 4, 2, 1 that fits.
    macro_rules! by_pieces {
        ($n:expr, $piece:ident($($arg:expr),*)) => {
            match $n {
                0 => {}
                1 => $piece::<1>($($arg,)* 0),
                n @ 2..=3 => starts::<2>(n).for_each(|at| $piece::<2>($($arg,)* at)),
                n @ 4..=7 => starts::<4>(n).for_each(|at| $piece::<4>($($arg,)* at)),
                n => starts::<8>(n).for_each(|at| $piece::<8>($($arg,)* at)),
            }
        };
    }

    /// `dst = f(src[..dst.len()])`, or zeros without `src`, in the pieces described above.
    /// (An overlapping piece reads `src` again, so `f` need not be idempotent.)
    #[inline(always)]
    fn move_row(dst: &mut [f32], src: Option<&[f32]>, f: impl Fn(f32) -> f32 + Copy) {
        by_pieces!(dst.len(), piece(dst, src, f));
    }

    /// `dst[..] = 0`.
    #[inline(always)]
    pub(super) fn zero(dst: &mut [f32]) {
        move_row(dst, None, |v| v);
    }

    /// `row[body] = f(src[0]), f(src[stride]), …` and zero on either side of `body`.
    #[inline(always)]
    pub(super) fn padded(
        row: &mut [f32],
        body: std::ops::Range<usize>,
        src: &[f32],
        stride: usize,
        f: impl Fn(f32) -> f32 + Copy,
    ) {
        zero(&mut row[..body.start]);
        zero(&mut row[body.end..]);
        gather(&mut row[body], src, stride, f);
    }

    /// `dst[i] = f(src[i·stride])` for every `i` (panics if `src` is too short).
    #[inline(always)]
    pub(super) fn gather(
        dst: &mut [f32],
        src: &[f32],
        stride: usize,
        f: impl Fn(f32) -> f32 + Copy,
    ) {
        let n = dst.len();
        match stride {
            1 => move_row(dst, Some(&src[..n]), f),
            2 => {
                // A piece of W outputs reads 2W inputs: where the last output's pair would
                // end past `src`, that output is moved alone.
                let m = if src.len() >= 2 * n {
                    n
                } else {
                    n.saturating_sub(1)
                };
                let d = &mut dst[..m];
                by_pieces!(m, every_other(d, src, f));
                if m < n {
                    dst[m] = f(src[2 * m]);
                }
            }
            _ => {
                for (i, v) in dst.iter_mut().enumerate() {
                    *v = f(src[i * stride]);
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

#[cfg(test)]
mod tests {
    use super::super::test_inputs::data;
    use super::*;

    /// Every phase plane [`PhaseLayout::fill`] writes holds exactly the padded, normalised
    /// source value (or zero): through the vector row moves at stride 1 and 2, and through
    /// the fallback where rows are too short for them.
    #[test]
    fn fill_matches_padded_source() {
        /// `([n, c, h, w], [kh, kw], [sh, sw], [ph, pw])`.
        type Case = ([usize; 4], [usize; 2], [usize; 2], [usize; 2]);
        let cases: &[Case] = &[
            ([2, 3, 28, 28], [3, 3], [2, 2], [1, 1]),
            ([1, 4, 14, 14], [3, 3], [2, 2], [1, 1]),
            ([1, 2, 20, 37], [3, 3], [2, 2], [1, 1]),
            ([1, 3, 9, 7], [3, 3], [2, 2], [1, 1]),
            ([1, 2, 12, 13], [3, 2], [2, 3], [2, 0]),
            ([1, 2, 10, 10], [1, 1], [2, 2], [0, 0]),
            ([1, 3, 28, 28], [3, 3], [1, 1], [1, 1]),
            ([1, 2, 8, 8], [7, 7], [2, 2], [3, 3]),
        ];
        for &(xd, kd, sd, pd) in cases {
            let g = ConvGeom::new(xd, kd, sd, pd);
            let layout = PhaseLayout::new(&g);
            let x = data(g.c * g.h * g.w, g.h + g.c);
            let scale: Vec<f32> = (0..g.c).map(|c| 0.5 + c as f32).collect();
            let shift: Vec<f32> = (0..g.c).map(|c| 0.25 - 0.5 * c as f32).collect();
            for norm in [
                None,
                Some(NormRelu {
                    scale: &scale,
                    shift: &shift,
                }),
            ] {
                let mut planes = vec![f32::NAN; layout.len(g.c)];
                layout.fill(&x, &g, &mut planes, norm);
                let plane = layout.hp * layout.wp;
                for c in 0..g.c {
                    for (a, b) in (0..layout.nph).flat_map(|a| (0..layout.npw).map(move |b| (a, b)))
                    {
                        for u in 0..layout.hp {
                            for v in 0..layout.wp {
                                let (r, q) = (u * g.sh + a, v * g.sw + b);
                                let inside = (g.ph..g.ph + g.h).contains(&r)
                                    && (g.pw..g.pw + g.w).contains(&q);
                                let want = if inside {
                                    let v = x[(c * g.h + r - g.ph) * g.w + q - g.pw];
                                    norm.map_or(v, |_| norm_relu(v, scale[c], shift[c]))
                                } else {
                                    0.0
                                };
                                let at = ((c * layout.nph + a) * layout.npw + b) * plane
                                    + u * layout.wp
                                    + v;
                                assert_eq!(
                                    planes[at].to_bits(),
                                    want.to_bits(),
                                    "{g:?}, norm {}, channel {c}, phase ({a}, {b}), ({u}, {v})",
                                    norm.is_some()
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// The vector row moves of the plane fill match plain loops on every length (short rows
    /// in 1/2/4-float pieces, whole vectors, overlapping last vectors), stride and shortest
    /// legal source.
    #[test]
    fn row_moves_match_plain_loops() {
        for stride in 1..=3 {
            for n in 0..=41 {
                for extra in 0..3 {
                    let src = data((n.max(1) - 1) * stride + 1 + extra, n + stride);
                    let mut got = vec![f32::NAN; n];
                    row_moves::gather(&mut got, &src, stride, |v| v);
                    let want: Vec<f32> = (0..n).map(|i| src[i * stride]).collect();
                    assert_eq!(got, want, "gather: stride {stride}, {n} values");
                }
                let mut zeros = vec![f32::NAN; n + 2];
                row_moves::zero(&mut zeros[1..n + 1]);
                assert!(zeros[1..n + 1].iter().all(|v| *v == 0.0), "zero {n}");
                assert!(
                    zeros[0].is_nan() && zeros[n + 1].is_nan(),
                    "zero {n}: outside"
                );
            }
        }
    }
}
