//! Convolution forward, input gradient and weight gradient as implicit GEMMs on x86-64 with
//! AVX2 + FMA: no im2col, no col2im.
//!
//! Why: the im2col path copies each sample's patches into a `[K, P]` column matrix (9x the
//! input for a 3x3 kernel) and the GEMM then packs that matrix once more. With as few as 32
//! output channels the two copies are a large part of the work (the 28x28 3x3 layers ran at
//! ~77 % of the sgemm roof, the stride-2 ones at 54-63 %). Here the micro-kernel reads the
//! input in place:
//!
//! * the sample is copied once into zero-padded, stride-phase-split planes
//!   ([`super::phase_planes`]): phase `(a, b)`
//!   of channel `c` holds `xpad[u·SH + a, v·SW + b]`, so tap `(i, j)` of output `(oh, ow)` is
//!   element `(oh + i/SH, ow + j/SW)` of phase `(i%SH, j%SW)`: every tap `k` is one fixed
//!   offset `off[k]` from the output's own base `oh·WP + ow`, whatever the stride;
//! * the weight is packed once per call as `[CO/16][K][16]`;
//! * a 6x16 register tile (6 output positions x 16 output channels, 12 accumulators) runs
//!   the whole `K` sum: per tap, two vector loads of weights, six broadcasts of inputs, twelve
//!   FMAs, then the tile is transposed in registers and stored into the NCHW output.
//!
//! While a sample's tiles run they ask, a few cache lines per tile, for the next sample's
//! input ([`Prefetch`]): the next plane fill then reads it from L2 rather than memory.
//!
//! Positions are the output's own (no garbage columns, unlike the shifted-row trick), so
//! 7x7 maps waste nothing; only a tail of fewer than 6 positions is computed on repeated
//! positions and not stored.
//!
//! The input gradient is the same tile over `dy` (zero-padded planes), once per stride phase
//! of `dx` ([`conv_backward_x`]): it gathers, where `gemm` + col2im scatter-adds.
//!
//! The weight gradient is the same tile with its roles turned ([`conv_backward_w`]): 6 taps
//! broadcast, `dyᵀ` as the 16-lane operand, the sum over the positions of a group of
//! samples. Its margin over `gemm` is smaller (1.02-1.09x on the 28 px trunk's 3x3 layers,
//! 1.15-1.18x at 32²): that GEMM shape (`[K, P] · [P, CO]`, a long sum) is `gemm`'s best.
//!
//! Other CPUs (no AVX2, aarch64) keep the im2col + `gemm` path for everything, whose
//! micro-kernels are NEON/AVX as the CPU allows.

use rayon::prelude::*;
use std::mem::MaybeUninit;

use super::kernels::{
    ConvGeom, ConvOutput, NormRelu, add_into, assume_init, conv_outputs, sum_over_ranges,
    sum_ranges, uninit, weight_from_tap_major, with_scratch,
};
use super::phase_planes::{PaddedRows, PhaseLayout};

/// Output positions per register tile (broadcast operand).
const MR: usize = 6;
/// Output channels per register tile (two 8-lane vectors).
pub(super) const NR: usize = 16;

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

/// Whether the implicit GEMM beats im2col + `gemm` on this geometry. Its 16 lanes are
/// output channels: fewer than 16 would leave lanes idle, and a pointwise convolution needs
/// no gather at all on the im2col path: both stay there. Measured at batch 128, forward:
/// `K ≥ 288` (3x3 kernels on ≥ 32 channels) 1.13-1.26x; since whole tiles are stored from
/// registers also the stems, `K = 9` (1 channel) 1.08-1.36x and `K = 27` (3 channels)
/// 1.02-1.34x. A 1x1 stride-2 shortcut with `K = 32` showed no resolved difference (7.3 vs
/// 7.9 ms a step, within the noise) and stays on im2col, whose "gather" is a plain subsample;
/// with `K = 64` the implicit GEMM measured 1.06x.
pub(crate) fn pays_off(co: usize, g: &ConvGeom) -> bool {
    let min_k = if g.kh * g.kw == 1 { 64 } else { 9 };
    co >= NR && g.k() >= min_k && !g.is_pointwise()
}

/// Whether the implicit input gradient beats `gemm` + col2im (or the flipped convolution):
/// the rule of [`pays_off`] with the input channels as lanes and the mean `K` of the stride
/// phases. A kernel narrower than its stride (a 1x1 stride-2 shortcut) leaves phases with
/// no taps and a quarter of the positions per GEMM: measured 0.61-0.74x, so it stays on
/// `gemm` + col2im; 3x3 stride 2 measured 1.25-1.34x.
pub(crate) fn pays_off_input_grad(co: usize, g: &ConvGeom) -> bool {
    g.c >= NR
        && g.kh >= g.sh
        && g.kw >= g.sw
        && co * g.kh * g.kw / (g.sh * g.sw) >= 64
        && !g.is_pointwise()
}

/// Whether the implicit weight gradient beats im2col + `gemm`: the rule of [`pays_off`]
/// with `K ≥ 27`, and no 1x1 kernel (there im2col is a plain subsample and `gemm` measured
/// 1.04-1.19x faster). Measured with the input gradient in one backward: 3x3 kernels on
/// ≥ 32 channels 0.98-1.18x in favour of the implicit GEMM, a 3-channel stem (`K = 27`)
/// 1.05-1.21x, a 1-channel stem (`K = 9`) 0.95-0.99x (so it stays on `gemm`).
pub(crate) fn pays_off_weight_grad(co: usize, g: &ConvGeom) -> bool {
    pays_off(co, g) && g.k() >= 27 && g.kh * g.kw > 1
}

/// A 1x1 convolution without padding, at the stride of a main convolution of the same
/// input, computed on the main one's input planes (a downsampling block's shortcut): its
/// only tap on input channel `c` is the main kernel's tap `(PH, PW)` of `c`, so it needs no
/// planes, no fill and no output-gradient sum of its own. See [`shares_planes`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shortcut<'a> {
    /// Weight `[CO_S, C]`.
    pub w: &'a [f32],
    /// Output channels `CO_S`.
    pub co: usize,
}

/// Whether the convolution `short` of the same input can run as a [`Shortcut`] of `main`
/// (`co` output channels): a 1x1 kernel without padding at `main`'s stride with `main`'s
/// output size, and `main` on the implicit GEMM for all three products (the planes are
/// shared in each).
pub(crate) fn shares_planes(co: usize, main: &ConvGeom, short: &ConvGeom) -> bool {
    available()
        && pays_off(co, main)
        && pays_off_input_grad(co, main)
        && pays_off_weight_grad(co, main)
        && (short.kh, short.kw, short.ph, short.pw) == (1, 1, 0, 0)
        && (short.sh, short.sw) == (main.sh, main.sw)
        && (short.n, short.c, short.h, short.w) == (main.n, main.c, main.h, main.w)
        && (short.ho, short.wo) == (main.ho, main.wo)
        && main.ph < main.kh
        && main.pw < main.kw
}

/// The shortcut's tap offsets in `main`'s planes: tap `(PH, PW)` of every input channel
/// (output `(oh, ow)` reads `xpad[oh·SH + PH, ow·SW + PW] = x[oh·SH, ow·SW]`).
fn shortcut_taps(layout: &PhaseLayout, g: &ConvGeom) -> Vec<u32> {
    assert!(
        g.ph < g.kh && g.pw < g.kw,
        "shortcut tap outside the kernel"
    );
    (0..g.c)
        .map(|c| layout.tap_offsets[(c * g.kh + g.ph) * g.kw + g.pw])
        .collect()
}

/// Panics unless every index into a planes buffer of `len` floats fits the `u32` offsets
/// and bases (checked before they are computed with `as u32`).
fn assert_offsets_fit(len: usize) {
    assert!(
        u32::try_from(len).is_ok(),
        "conv sample too large for 32-bit offsets"
    );
}

/// The weight `[CO, K]` packed as `[ceil(CO/16)][K][16]`, zero past `CO`.
pub(super) fn pack_weight(w: &[f32], co: usize, k: usize) -> Vec<f32> {
    let blocks = co.div_ceil(NR);
    let mut packed = vec![0.0f32; blocks * k * NR];
    if k == 0 {
        return packed;
    }
    for (o, row) in w.chunks_exact(k).take(co).enumerate() {
        let (blk, lane) = (o / NR, o % NR);
        let dst = &mut packed[blk * k * NR..(blk + 1) * k * NR];
        for (kk, v) in row.iter().enumerate() {
            dst[kk * NR + lane] = *v;
        }
    }
    packed
}

/// One implicit GEMM over a sample's planes: `Σ_k a[o][k] · planes[base(p) + off(k)]` for
/// every output channel (lane) `o < lanes` and position `p`, with `a` packed by
/// [`pack_weight`]; [`TapGemm::store_channels`], [`TapGemm::store_scattered`] or
/// [`TapGemm::accumulate`] says where results go. Built once per call and run once per
/// sample (or group of samples).
pub(super) struct TapGemm<'a> {
    packed: &'a [f32],
    tap_offsets: &'a [u32],
    position_bases: &'a [u32],
    lanes: usize,
    /// The furthest float any tap reads, `max(base) + max(offset)` (`None` without
    /// positions or taps): worked out once here, not for every sample.
    reach: Option<usize>,
}

impl<'a> TapGemm<'a> {
    pub(super) fn new(
        packed: &'a [f32],
        tap_offsets: &'a [u32],
        position_bases: &'a [u32],
        lanes: usize,
    ) -> Self {
        let max = |v: &[u32]| v.iter().max().map(|m| *m as usize);
        let reach = max(position_bases)
            .zip(max(tap_offsets))
            .map(|(b, o)| b + o);
        Self {
            packed,
            tap_offsets,
            position_bases,
            lanes,
            reach,
        }
    }

    /// Checks that every tap lies inside `planes` and `packed` holds `K` rows per block, and
    /// returns `(K, positions, blocks)`, or `None` when there is nothing to compute. Every
    /// unsafe tile call relies on it.
    fn checked(&self, planes: &[f32]) -> Option<(usize, usize, usize)> {
        assert!(available(), "implicit GEMM needs AVX2 and FMA");
        let (k, p) = (self.tap_offsets.len(), self.position_bases.len());
        let blocks = self.lanes.div_ceil(NR);
        assert_eq!(self.packed.len(), blocks * k * NR, "packed weight size");
        let reach = self.reach?;
        assert!(reach < planes.len(), "tap outside the planes");
        Some((k, p, blocks))
    }

    /// The bases of the tile at position `p0`; a short last tile repeats its last position
    /// (computed, not stored).
    fn bases(&self, p0: usize, rows: usize) -> [u32; MR] {
        std::array::from_fn(|m| self.position_bases[p0 + m.min(rows - 1)])
    }

    /// Runs every 6x16 tile and hands it to `emit(block, first position, positions, tile)`.
    /// Panics (before any unsafe read) if a tap could fall outside `planes` or `packed`
    /// does not hold `K` rows per block.
    fn tiles(
        &self,
        planes: &[f32],
        mut prefetch: Prefetch,
        mut emit: impl FnMut(usize, usize, usize, &[[f32; NR]; MR]),
    ) {
        let Some((k, p, blocks)) = self.checked(planes) else {
            return;
        };
        prefetch.spread_over(blocks * p.div_ceil(MR));
        // Overwritten whole by every tile (zeroed here once, not per tile).
        let mut tile = [[0.0f32; NR]; MR];
        for blk in 0..blocks {
            let a = &self.packed[blk * k * NR..(blk + 1) * k * NR];
            for p0 in (0..p).step_by(MR) {
                prefetch.step();
                let rows = MR.min(p - p0);
                let bases = self.bases(p0, rows);
                // SAFETY: AVX2 and FMA are present and every base + tap offset lies inside
                // `planes` (`checked`); `a` holds K·NR floats.
                unsafe {
                    tile_rows(
                        rows,
                        a.as_ptr(),
                        planes.as_ptr(),
                        &bases,
                        self.tap_offsets,
                        &mut tile,
                    )
                };
                emit(blk, p0, rows, &tile);
            }
        }
    }

    /// Stores every output at `out[o·channel_stride + p]`. A whole tile (6 positions, 16
    /// lanes) is transposed in registers and stored as 4 + 2 consecutive floats per channel
    /// (perf: the scalar stores were ~3.6 % of a 28 px training step); a short tile or block
    /// goes through the tile array.
    pub(super) fn store_channels(
        &self,
        planes: &[f32],
        out: &mut [MaybeUninit<f32>],
        channel_stride: usize,
        mut prefetch: Prefetch,
    ) {
        let Some((k, p, blocks)) = self.checked(planes) else {
            return;
        };
        prefetch.spread_over(blocks * p.div_ceil(MR));
        let whole_blocks = self.lanes / NR;
        assert!(
            self.lanes == 0 || (self.lanes - 1) * channel_stride + p <= out.len(),
            "tile store outside the output"
        );
        let mut tile = [[0.0f32; NR]; MR];
        for blk in 0..blocks {
            let a = &self.packed[blk * k * NR..(blk + 1) * k * NR];
            let first = blk * NR * channel_stride;
            for p0 in (0..p).step_by(MR) {
                prefetch.step();
                let rows = MR.min(p - p0);
                let bases = self.bases(p0, rows);
                let (a, x, offs) = (a.as_ptr(), planes.as_ptr(), self.tap_offsets);
                if rows == MR && blk < whole_blocks {
                    let dst = out[first + p0..].as_mut_ptr().cast::<f32>();
                    // SAFETY: as in `tiles` for the reads; lane o writes 6 floats ending at
                    // (blk·NR + o)·channel_stride + p0 + 6 ≤ (lanes − 1)·channel_stride + p
                    // ≤ out.len() (asserted above).
                    unsafe { tile_6x16_to_channels(a, x, &bases, offs, dst, channel_stride) };
                    continue;
                }
                // SAFETY: as in `tiles`.
                unsafe { tile_rows(rows, a, x, &bases, offs, &mut tile) };
                for lane in 0..NR.min(self.lanes - blk * NR) {
                    let dst = &mut out[first + lane * channel_stride + p0..][..rows];
                    for (m, d) in dst.iter_mut().enumerate() {
                        d.write(tile[m][lane]);
                    }
                }
            }
        }
    }

    /// Stores every output at `out[o·channel_stride + dst[p]]`.
    fn store_scattered(
        &self,
        planes: &[f32],
        out: &mut [MaybeUninit<f32>],
        channel_stride: usize,
        position_dst: &[u32],
        prefetch: Prefetch,
    ) {
        self.tiles(planes, prefetch, |blk, p0, rows, tile| {
            let lanes = NR.min(self.lanes - blk * NR);
            let first = blk * NR * channel_stride;
            let map = &position_dst[p0..p0 + rows];
            for lane in 0..lanes {
                let channel = &mut out[first + lane * channel_stride..];
                for (m, q) in map.iter().enumerate() {
                    channel[*q as usize].write(tile[m][lane]);
                }
            }
        });
    }

    /// Adds every output into a position-major accumulator: `acc[p·stride + o] += …`
    /// (`stride` at least the lanes rounded up to 16).
    fn accumulate(&self, planes: &[f32], acc: &mut [f32], stride: usize, prefetch: Prefetch) {
        self.tiles(planes, prefetch, |blk, p0, rows, tile| {
            for (m, row) in tile.iter().enumerate().take(rows) {
                let dst = &mut acc[(p0 + m) * stride + blk * NR..][..NR];
                for (d, v) in dst.iter_mut().zip(row) {
                    *d += *v;
                }
            }
        });
    }
}

/// Prefetches of what the next task reads from memory (the next sample's input, or the
/// next group's input and output gradient) spread over the tiles of a GEMM: each tile asks
/// for its share of the lines, so they arrive in L2 while the tiles compute. Without them
/// the next plane fill waits on memory: in a batch-64 step on the 28 px trunk a forward fill
/// took 14 µs a sample from memory against 9 µs prefetched, 4-5 µs from cache.
pub(super) struct Prefetch<'a> {
    parts: [&'a [MaybeUninit<f32>]; 3],
    /// Lines (of 64 bytes) asked for per tile.
    per_tile: usize,
    /// The part and line the next request is for.
    part: usize,
    line: usize,
}

impl<'a> Prefetch<'a> {
    /// Floats per cache line.
    const LINE: usize = 16;

    /// Requests for `parts` (empty ones allowed), made by [`Self::step`] once spread over
    /// the tiles ([`Self::spread_over`]).
    pub(super) fn new(parts: [&'a [f32]; 3]) -> Self {
        Self::of(parts.map(as_lines))
    }

    /// [`Self::new`] for parts that may not be written yet (an output about to be).
    pub(super) fn of(parts: [&'a [MaybeUninit<f32>]; 3]) -> Self {
        Self {
            parts,
            per_tile: 0,
            part: 0,
            line: 0,
        }
    }

    /// No requests.
    fn none() -> Self {
        Self::new([&[]; 3])
    }

    /// Spreads the requests over `tiles` calls of [`Self::step`].
    fn spread_over(&mut self, tiles: usize) {
        let lines: usize = self
            .parts
            .iter()
            .map(|p| p.len().div_ceil(Self::LINE))
            .sum();
        self.per_tile = lines.div_ceil(tiles.max(1));
    }

    /// Asks for the next tile's share.
    #[inline(always)]
    fn step(&mut self) {
        self.step_with(prefetch_line);
    }

    /// [`Self::step`] with `request(part, float)` for the first float of every line.
    #[inline(always)]
    fn step_with(&mut self, mut request: impl FnMut(&[MaybeUninit<f32>], usize)) {
        let mut left = self.per_tile;
        while left > 0 && self.part < self.parts.len() {
            let part = self.parts[self.part];
            let lines = part.len().div_ceil(Self::LINE);
            let end = (self.line + left).min(lines);
            left -= end - self.line;
            for line in self.line..end {
                request(part, line * Self::LINE);
            }
            self.line = end;
            if self.line == lines {
                (self.part, self.line) = (self.part + 1, 0);
            }
        }
    }
}

/// `x` as memory a prefetch may name (the same floats, seen as possibly unwritten).
pub(super) fn as_lines(x: &[f32]) -> &[MaybeUninit<f32>] {
    // SAFETY: MaybeUninit<f32> has f32's layout and makes no claim on the contents; the view
    // is shared, so nothing can write an uninitialised value through it.
    unsafe { &*(x as *const [f32] as *const [MaybeUninit<f32>]) }
}

/// Asks for the cache line holding `part[at]` to be brought into L2.
#[inline(always)]
fn prefetch_line(part: &[MaybeUninit<f32>], at: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T1, _mm_prefetch};
        // SAFETY: a prefetch only hints the cache; the address lies inside `part`.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(part[at..].as_ptr().cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (part, at);
}

/// Forward `y[n] = conv(x[n], w)` (`x` `[N, C, H, W]`, `w` `[CO, C, KH, KW]` viewed as
/// `[CO, K]`), returns `[N, CO, HO·WO]` and, with `moments`, each output plane's
/// [`plane_moments`] (`[N][CO]`, taken while the sample's output is in cache). The caller
/// checks [`available`].
pub(crate) fn conv_forward(
    x: &[f32],
    w: &[f32],
    co: usize,
    g: &ConvGeom,
    norm: Option<NormRelu>,
    moments: bool,
) -> ConvOutput {
    let [main, _] = conv_forward_with_shortcut(x, w, co, g, norm, moments, None);
    main
}

/// [`conv_forward`], and with `shortcut` also that convolution's output `[N, CO_S, HO·WO]`
/// (and moments) from the same planes; without it the second output is empty.
pub(crate) fn conv_forward_with_shortcut(
    x: &[f32],
    w: &[f32],
    co: usize,
    g: &ConvGeom,
    norm: Option<NormRelu>,
    moments: bool,
    shortcut: Option<Shortcut>,
) -> [ConvOutput; 2] {
    let (k, p) = (g.k(), g.p());
    assert_eq!(w.len(), co * k, "conv weight is not [CO, K]");
    let layout = PhaseLayout::new(g);
    let x_len = g.c * g.h * g.w;
    assert_eq!(x.len(), g.n * x_len, "conv input is not [N, C, H, W]");
    let planes_len = layout.len(g.c);
    assert_offsets_fit(planes_len);
    let packed = pack_weight(w, co, k);
    let gemm = TapGemm::new(&packed, &layout.tap_offsets, &layout.position_bases, co);
    let co_s = shortcut.map_or(0, |s| s.co);
    let (short_packed, short_taps) = match shortcut {
        Some(s) => {
            assert_eq!(s.w.len(), s.co * g.c, "shortcut weight is not [CO_S, C]");
            (pack_weight(s.w, s.co, g.c), shortcut_taps(&layout, g))
        }
        None => (Vec::new(), Vec::new()),
    };
    let short = TapGemm::new(&short_packed, &short_taps, &layout.position_bases, co_s);
    // TapGemm::store writes every (channel, position) of the sample.
    conv_outputs(g.n, [co, co_s], p, moments, |n, [y_n, ys_n]| {
        with_scratch(planes_len, |planes| {
            layout.fill(&x[n * x_len..(n + 1) * x_len], g, planes, norm);
            // Most often this task's next sample (rayon splits the samples into runs).
            let next = x.get((n + 1) * x_len..(n + 2) * x_len).unwrap_or(&[]);
            gemm.store_channels(planes, y_n, p, Prefetch::new([next, &[], &[]]));
            if co_s > 0 {
                short.store_channels(planes, ys_n, p, Prefetch::none());
            }
        });
    })
}

/// One class of input pixels for the input gradient: those whose padded coordinates
/// `(h + PH, w + PW)` are `(α, β)` modulo the stride. Only taps `i ≡ α`, `j ≡ β` reach them,
/// and tap `(i, j) = (α + SH·m, β + SW·n)` reads `dy[o, (h+PH)/SH − m, (w+PW)/SW − n]`: a
/// stride-1 correlation of `dy` with the sub-kernel, i.e. an implicit GEMM over `dy`'s
/// padded planes.
struct InputGradPhase {
    /// `w[o, c, α + SH·m, β + SW·n]` packed as `[ceil(C/16)][CO·M·N][16]`.
    packed: Vec<f32>,
    tap_offsets: Vec<u32>,
    position_bases: Vec<u32>,
    /// `h·W + w` of each pixel of the class.
    position_dst: Vec<u32>,
    /// Whether the class is every pixel in order (stride 1): `position_dst[p] = p`.
    every_pixel: bool,
}

/// Everything an input gradient's call works out before it reads `dy`: the padded `dy`
/// planes' shape and each stride phase's packed sub-kernel, taps and pixels. It runs on the
/// calling thread while the pool waits, on a weight that is cold by then, so it reads the
/// weight once per phase in its own order and packs it in place: gathered through a
/// `[C][CO·M·N]` copy and then packed, it took 1.2–1.9 ms of a batch-64 DirectPred step (timed
/// in the step, 9 alternating runs), 0.6–0.8 ms this way.
struct InputGradPlan {
    /// Rows and columns of padding on each side of `dy`.
    pad_h: usize,
    pad_w: usize,
    /// Rows and columns of one padded `dy` plane, and its floats.
    hd: usize,
    wd: usize,
    plane: usize,
    phases: Vec<InputGradPhase>,
}

impl InputGradPlan {
    fn new(w: &[f32], co: usize, g: &ConvGeom, shortcut: Option<Shortcut>) -> Self {
        let (pad_h, pad_w) = ((g.kh - 1) / g.sh, (g.kw - 1) / g.sw);
        // Rows r of dy from −pad_h up to the largest (h + PH)/SH, stored at r + pad_h.
        let hd = (g.h - 1 + g.ph) / g.sh + 1 + pad_h;
        let wd = (g.w - 1 + g.pw) / g.sw + 1 + pad_w;
        let plane = hd * wd;
        assert_offsets_fit((co + shortcut.map_or(0, |s| s.co)) * plane);
        let taps = g.kh * g.kw;
        let mut phases = Vec::with_capacity(g.sh * g.sw);
        for alpha in 0..g.sh {
            for beta in 0..g.sw {
                let taps_i: Vec<usize> = (alpha..g.kh).step_by(g.sh).collect();
                let taps_j: Vec<usize> = (beta..g.kw).step_by(g.sw).collect();
                // The shortcut's one tap, (PH, PW), reaches the pixels of its own phase only.
                let short = shortcut.filter(|_| g.ph % g.sh == alpha && g.pw % g.sw == beta);
                let sub = taps_i.len() * taps_j.len();
                let kp = co * sub + short.map_or(0, |s| s.co);
                let offset = |plane_index: usize, i: usize, j: usize| {
                    let (m, n) = (i / g.sh, j / g.sw);
                    (plane_index * plane + (pad_h - m) * wd + pad_w - n) as u32
                };
                let mut tap_offsets = Vec::with_capacity(kp);
                for o in 0..co {
                    for &i in &taps_i {
                        for &j in &taps_j {
                            tap_offsets.push(offset(o, i, j));
                        }
                    }
                }
                for o in 0..short.map_or(0, |s| s.co) {
                    tap_offsets.push(offset(co + o, g.ph, g.pw));
                }
                // Row (o, m, n) of lane c is w[o, c, i, j] (then row CO·M·N + o of the
                // shortcut is its w[o, c]), packed as [ceil(C/16)][kp][16]: read in the
                // weight's own order, written 16 lanes to a line.
                let mut packed = vec![0.0f32; g.c.div_ceil(NR) * kp * NR];
                let mut put = |row: usize, c: usize, v: f32| {
                    packed[((c / NR) * kp + row) * NR + c % NR] = v;
                };
                for (o, w_o) in w.chunks_exact(g.c * taps).take(co).enumerate() {
                    for (c, w_oc) in w_o.chunks_exact(taps).enumerate() {
                        let mut row = o * sub;
                        for &i in &taps_i {
                            for &j in &taps_j {
                                put(row, c, w_oc[i * g.kw + j]);
                                row += 1;
                            }
                        }
                    }
                }
                if let Some(s) = short {
                    for (o, w_o) in s.w.chunks_exact(g.c).take(s.co).enumerate() {
                        for (c, v) in w_o.iter().enumerate() {
                            put(co * sub + o, c, *v);
                        }
                    }
                }
                let (mut position_bases, mut position_dst) = (Vec::new(), Vec::new());
                for h in (0..g.h).filter(|h| (h + g.ph) % g.sh == alpha) {
                    for x in (0..g.w).filter(|x| (x + g.pw) % g.sw == beta) {
                        position_bases.push((((h + g.ph) / g.sh) * wd + (x + g.pw) / g.sw) as u32);
                        position_dst.push((h * g.w + x) as u32);
                    }
                }
                phases.push(InputGradPhase {
                    packed,
                    tap_offsets,
                    position_bases,
                    every_pixel: position_dst.len() == g.h * g.w,
                    position_dst,
                });
            }
        }
        Self {
            pad_h,
            pad_w,
            hd,
            wd,
            plane,
            phases,
        }
    }
}

/// Input gradient `dx[n] = conv_transpose(dy[n], w)` (`dy` `[N, CO, HO, WO]`), returns
/// `[N, C, H, W]`, as one implicit GEMM per stride phase of `dx` over `dy` zero-padded by
/// `(KH−1)/SH` rows and `(KW−1)/SW` columns on each side: no column matrix, no scatter.
pub(crate) fn conv_backward_x(dy: &[f32], w: &[f32], co: usize, g: &ConvGeom) -> Vec<f32> {
    conv_backward_x_with_shortcut(dy, w, co, g, None)
}

/// [`conv_backward_x`] added into `acc` (`[N, C, H, W]`, another gradient of the same input):
/// each sample's `dx` is computed into scratch and added while it is in cache, so no `dx`
/// map is written and read back.
pub(crate) fn conv_backward_x_into(
    dy: &[f32],
    w: &[f32],
    co: usize,
    g: &ConvGeom,
    acc: &mut [f32],
) {
    input_gradient(dy, w, co, g, None, Some(acc));
}

/// [`conv_backward_x`] of a convolution and its [`Shortcut`] together (`dys` the shortcut's
/// output gradient `[N, CO_S, HO, WO]`): `dx` is the sum of both input gradients. The
/// shortcut's gradient planes sit after the main ones in the same buffer and its `CO_S` taps
/// join the GEMM of the stride phase its tap belongs to, so the sum is taken in registers.
pub(crate) fn conv_backward_x_with_shortcut(
    dy: &[f32],
    w: &[f32],
    co: usize,
    g: &ConvGeom,
    shortcut: Option<(Shortcut, &[f32])>,
) -> Vec<f32> {
    input_gradient(dy, w, co, g, shortcut, None).expect("no accumulator given: dx is returned")
}

/// The input gradient of [`conv_backward_x_with_shortcut`], returned as a new map, or with
/// `into` added into that map (and `None` returned).
fn input_gradient(
    dy: &[f32],
    w: &[f32],
    co: usize,
    g: &ConvGeom,
    shortcut: Option<(Shortcut, &[f32])>,
    into: Option<&mut [f32]>,
) -> Option<Vec<f32>> {
    let (k, p) = (g.k(), g.p());
    assert_eq!(w.len(), co * k, "conv weight is not [CO, K]");
    assert_eq!(
        dy.len(),
        g.n * co * p,
        "conv output gradient is not [N, CO, HO, WO]"
    );
    let co_s = shortcut.map_or(0, |(s, dys)| {
        assert_eq!(s.w.len(), s.co * g.c, "shortcut weight is not [CO_S, C]");
        assert_eq!(dys.len(), g.n * s.co * p, "shortcut output gradient size");
        assert!(
            g.ph < g.kh && g.pw < g.kw,
            "shortcut tap outside the kernel"
        );
        s.co
    });
    let plan = InputGradPlan::new(w, co, g, shortcut.map(|(s, _)| s));
    let planes_len = (co + co_s) * plan.plane;
    let gemms: Vec<TapGemm> = plan
        .phases
        .iter()
        .map(|ph| TapGemm::new(&ph.packed, &ph.tap_offsets, &ph.position_bases, g.c))
        .collect();
    let x_len = g.c * g.h * g.w;
    // One sample: dy's padded planes, then every phase's GEMM into dx_n. The phases
    // partition the pixels of a sample; each writes all of its own, on every channel.
    let sample = |n: usize, planes: &mut [f32], dx_n: &mut [MaybeUninit<f32>]| {
        // Output rows/columns past these only ever saw padding (PH ≥ KH): no pixel
        // reads them.
        let (rows, cols) = (
            g.ho.min(plan.hd - plan.pad_h),
            g.wo.min(plan.wd - plan.pad_w),
        );
        let dy_n = &dy[n * co * p..(n + 1) * co * p];
        let dys_n = shortcut.map_or(&[][..], |(_, dys)| &dys[n * co_s * p..(n + 1) * co_s * p]);
        let pad = PaddedRows {
            rows,
            cols,
            src_width: g.wo,
            top: plan.pad_h,
            left: plan.pad_w,
            width: plan.wd,
        };
        let sources = dy_n.chunks_exact(p).chain(dys_n.chunks_exact(p));
        for (src, dst) in sources.zip(planes.chunks_exact_mut(plan.plane)) {
            pad.fill(src, dst);
        }
        // The next sample's output gradients, asked for during the first GEMM.
        let mut next = Some([
            dy.get((n + 1) * co * p..(n + 2) * co * p).unwrap_or(&[]),
            shortcut.map_or(&[][..], |(_, dys)| {
                dys.get((n + 1) * co_s * p..(n + 2) * co_s * p)
                    .unwrap_or(&[])
            }),
            &[],
        ]);
        for (phase, gemm) in plan.phases.iter().zip(&gemms) {
            if phase.tap_offsets.is_empty() {
                // No tap reaches these pixels (stride > kernel): their gradient is 0.
                for c in 0..g.c {
                    for &d in &phase.position_dst {
                        dx_n[c * g.h * g.w + d as usize].write(0.0);
                    }
                }
                continue;
            }
            let prefetch = next.take().map_or_else(Prefetch::none, Prefetch::new);
            if phase.every_pixel {
                gemm.store_channels(planes, dx_n, g.h * g.w, prefetch);
            } else {
                gemm.store_scattered(planes, dx_n, g.h * g.w, &phase.position_dst, prefetch);
            }
        }
    };
    match into {
        None => {
            let mut dx = uninit(g.n * x_len);
            dx.par_chunks_mut(x_len)
                .enumerate()
                .for_each(|(n, dx_n)| with_scratch(planes_len, |planes| sample(n, planes, dx_n)));
            // SAFETY: `sample` wrote every element of every dx_n.
            Some(unsafe { assume_init(dx) })
        }
        Some(acc) => {
            assert_eq!(acc.len(), g.n * x_len, "input gradient accumulator size");
            acc.par_chunks_mut(x_len)
                .enumerate()
                .for_each(|(n, acc_n)| {
                    with_scratch(planes_len + x_len, |buf| {
                        let (planes, dx_n) = buf.split_at_mut(planes_len);
                        // SAFETY: MaybeUninit<f32> has f32's layout, and only initialised
                        // values are written through it.
                        let dx_n = unsafe { &mut *(dx_n as *mut [f32] as *mut [MaybeUninit<f32>]) };
                        sample(n, planes, dx_n);
                        // SAFETY: `sample` wrote every element of dx_n.
                        let dx_n = unsafe { &*(dx_n as *const [MaybeUninit<f32>] as *const [f32]) };
                        for (a, d) in acc_n.iter_mut().zip(dx_n) {
                            *a += *d;
                        }
                    })
                });
            None
        }
    }
}

/// Weight gradient `dw[o, k] = Σ_n Σ_p dy[n][o, p] · x[n][base_p + off_k]`, returns `[CO, K]`.
///
/// The 6x16 tile with its roles turned: the 16 lanes are output channels of `dyᵀ` (packed
/// `[CO/16][G·P][16]` for a group of `G` samples), the 6 broadcast rows are 6 taps, and the sum
/// runs over the positions of all `G` samples at once, so a tile's 96 sums are added into the
/// accumulator once per group instead of once per sample. `G` keeps a group's planes and `dyᵀ`
/// within ~512 KiB (L2).
pub(crate) fn conv_backward_w(
    x: &[f32],
    dy: &[f32],
    co: usize,
    g: &ConvGeom,
    norm: Option<NormRelu>,
) -> Vec<f32> {
    conv_backward_w_with_shortcut(x, dy, co, g, norm, None).0
}

/// [`conv_backward_w`], and with `shortcut = (CO_S, dys)` also the weight gradient `[CO_S, C]`
/// of a [`Shortcut`] whose output gradient is `dys`, from the same planes (empty without).
pub(crate) fn conv_backward_w_with_shortcut(
    x: &[f32],
    dy: &[f32],
    co: usize,
    g: &ConvGeom,
    norm: Option<NormRelu>,
    shortcut: Option<(usize, &[f32])>,
) -> (Vec<f32>, Vec<f32>) {
    let (k, p) = (g.k(), g.p());
    let x_len = g.c * g.h * g.w;
    assert_eq!(x.len(), g.n * x_len, "conv input is not [N, C, H, W]");
    assert_eq!(
        dy.len(),
        g.n * co * p,
        "conv output gradient is not [N, CO, HO, WO]"
    );
    let (co_s, dys) = shortcut.unwrap_or((0, &[]));
    assert_eq!(dys.len(), g.n * co_s * p, "shortcut output gradient size");
    let layout = PhaseLayout::new(g);
    let short_taps = if co_s > 0 {
        shortcut_taps(&layout, g)
    } else {
        Vec::new()
    };
    let planes_len = layout.len(g.c);
    let (blocks, blocks_s) = (co.div_ceil(NR), co_s.div_ceil(NR));
    let (co_r, co_s_r) = (blocks * NR, blocks_s * NR);
    let per_sample = planes_len + (co_r + co_s_r) * p;
    let group = (128 * 1024 / per_sample).clamp(1, g.n.max(1));
    assert_offsets_fit(group * planes_len);
    let bases: Vec<u32> = (0..group)
        .flat_map(|s| {
            layout
                .position_bases
                .iter()
                .map(move |b| b + (s * planes_len) as u32)
        })
        .collect();
    let zeros = || (vec![0.0f32; k * co_r], vec![0.0f32; g.c * co_s_r]);
    // As many groups in every range of `sum_over_ranges`, their sizes within one sample of
    // each other: with a ragged last group, or one range a group longer, the other threads
    // wait for it at the end.
    let ranges = sum_ranges();
    let groups = (g.n.div_ceil(group).div_ceil(ranges) * ranges).min(g.n.max(1));
    let run_group = |(acc, acc_s): &mut (Vec<f32>, Vec<f32>), gi: usize| {
        let samples = gi * g.n / groups..(gi + 1) * g.n / groups;
        let len = samples.len();
        let rows = len * p;
        with_scratch(group * per_sample, |buf| {
            let (planes, rest) = buf.split_at_mut(group * planes_len);
            let (dyt, dyst) = rest.split_at_mut(group * co_r * p);
            for (s, n) in samples.clone().enumerate() {
                layout.fill(
                    &x[n * x_len..(n + 1) * x_len],
                    g,
                    &mut planes[s * planes_len..(s + 1) * planes_len],
                    norm,
                );
            }
            let planes = &planes[..len * planes_len];
            transpose_group(dy, co, p, samples.clone(), dyt);
            // The next group's input and output gradients (most often this task's next).
            let next = (gi + 1) * g.n / groups..(gi + 2) * g.n / groups;
            let prefetch = Prefetch::new([
                x.get(next.start * x_len..next.end * x_len).unwrap_or(&[]),
                dy.get(next.start * co * p..next.end * co * p)
                    .unwrap_or(&[]),
                dys.get(next.start * co_s * p..next.end * co_s * p)
                    .unwrap_or(&[]),
            ]);
            TapGemm::new(
                &dyt[..blocks * rows * NR],
                &bases[..rows],
                &layout.tap_offsets,
                co,
            )
            .accumulate(planes, acc, co_r, prefetch);
            if co_s > 0 {
                transpose_group(dys, co_s, p, samples, dyst);
                let packed = &dyst[..blocks_s * rows * NR];
                TapGemm::new(packed, &bases[..rows], &short_taps, co_s).accumulate(
                    planes,
                    acc_s,
                    co_s_r,
                    Prefetch::none(),
                );
            }
        });
    };
    let (acc, acc_s) = sum_over_ranges(
        groups,
        zeros,
        |acc, range| range.for_each(|gi| run_group(acc, gi)),
        |(a, a_s), (b, b_s)| (add_into(a, b), add_into(a_s, b_s)),
    );
    (
        weight_from_tap_major(&acc, co_r, co, k),
        weight_from_tap_major(&acc_s, co_s_r, co_s, g.c),
    )
}

/// `dyᵀ` of a group of samples packed for the weight gradient's tile: `[CO/16][G·P][16]`,
/// lanes past `CO` zero.
fn transpose_group(
    dy: &[f32],
    co: usize,
    p: usize,
    samples: std::ops::Range<usize>,
    dyt: &mut [f32],
) {
    let rows = samples.len() * p;
    for blk in 0..co.div_ceil(NR) {
        let block = &mut dyt[blk * rows * NR..(blk + 1) * rows * NR];
        let lanes = NR.min(co - blk * NR);
        if lanes < NR {
            block.fill(0.0);
        }
        for (s, n) in samples.clone().enumerate() {
            let dy_n = &dy[n * co * p..(n + 1) * co * p];
            let rows_s = &mut block[s * p * NR..(s + 1) * p * NR];
            transpose_channels(&dy_n[blk * NR * p..], p, lanes, rows_s);
        }
    }
}

/// `rows[q·16 + lane] = planes[lane·p + q]` for `lane < lanes`, every position `q < p`
/// (the weight gradient's `dyᵀ`; lanes past `lanes` are left as they are). Whole blocks of
/// 16 channels go 8x8 at a time through vector transposes (perf: the scalar gather was ~2 %
/// of a 28 px training step).
fn transpose_channels(planes: &[f32], p: usize, lanes: usize, rows: &mut [f32]) {
    assert!(lanes <= NR && rows.len() >= p * NR, "dyᵀ block size");
    assert!(
        lanes == 0 || planes.len() >= (lanes - 1) * p + p,
        "dyᵀ source size"
    );
    let mut q0 = 0;
    if lanes == NR && available() {
        while q0 + 8 <= p {
            // SAFETY: AVX2 is present; channel lane reads planes[lane·p + q0..][..8] and
            // lane·p + q0 + 8 ≤ 15·p + p ≤ planes.len(); row q writes rows[q·16..][..16] for
            // q < q0 + 8 ≤ p, inside rows (both asserted above).
            unsafe { transpose_16x8(planes.as_ptr().add(q0), p, rows.as_mut_ptr().add(q0 * NR)) };
            q0 += 8;
        }
    }
    for q in q0..p {
        for (lane, d) in rows[q * NR..(q + 1) * NR]
            .iter_mut()
            .enumerate()
            .take(lanes)
        {
            *d = planes[lane * p + q];
        }
    }
}

/// `out[q·16 + lane] = src[lane·stride + q]` for 16 lanes and 8 positions `q`: two 8x8
/// transposes.
///
/// # Safety
/// The CPU must have AVX2; `src[lane·stride + q]` must be readable and `out[q·16 + lane]`
/// writable for every `lane < 16`, `q < 8`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transpose_16x8(src: *const f32, stride: usize, out: *mut f32) {
    use std::arch::x86_64::*;
    // SAFETY: the caller guarantees every read and write.
    unsafe {
        for h in 0..2 {
            let r: [__m256; 8] =
                std::array::from_fn(|l| _mm256_loadu_ps(src.add((8 * h + l) * stride)));
            // Pairs, then quads of lanes per position, within each 128-bit half …
            let t: [__m256; 8] = std::array::from_fn(|i| {
                let (a, b) = (r[2 * (i / 2)], r[2 * (i / 2) + 1]);
                if i % 2 == 0 {
                    _mm256_unpacklo_ps(a, b)
                } else {
                    _mm256_unpackhi_ps(a, b)
                }
            });
            // u[4j + i]: lanes 4j..4j + 4 of positions (i, i + 4).
            let u: [__m256; 8] = std::array::from_fn(|i| {
                let (j, i) = (i / 4, i % 4);
                let (a, b) = (t[4 * j + i / 2], t[4 * j + 2 + i / 2]);
                if i % 2 == 0 {
                    _mm256_shuffle_ps::<0x44>(a, b)
                } else {
                    _mm256_shuffle_ps::<0xEE>(a, b)
                }
            });
            // … then the 128-bit halves: position q's 8 lanes.
            for i in 0..4 {
                let (lo, hi) = (u[i], u[4 + i]);
                _mm256_storeu_ps(
                    out.add(i * NR + 8 * h),
                    _mm256_permute2f128_ps::<0x20>(lo, hi),
                );
                _mm256_storeu_ps(
                    out.add((i + 4) * NR + 8 * h),
                    _mm256_permute2f128_ps::<0x31>(lo, hi),
                );
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn transpose_16x8(_src: *const f32, _stride: usize, _out: *mut f32) {
    unreachable!("vector transposes are only taken on x86-64 with AVX2")
}

/// The register tile's sums over its first `R ≤ 6` positions,
/// `Σ_k a[k][o] · planes[bases[m] + offs[k]]`, as `acc[m][h]` = lanes `8h..8h + 8` of
/// position `m`, with the `K` sum split `S` ways (tap `k` into partial sum `k mod S`, the
/// partial sums added at the end). `R` rows keep `2R` FMA chains busy: a short tile alone
/// waits on the FMA latency (4 cycles) rather than on the two FMA pipes, and `S` ways give
/// it `2RS` chains (8 or more from `RS ≥ 4`). A whole tile takes `S = 1`.
///
/// # Safety
/// The CPU must have AVX2 and FMA; `a` must hold `offs.len()·16` floats and
/// `planes[bases[m] + offs[k]]` must be in bounds for every `m < R`, `k`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn sum_tile<const R: usize, const S: usize>(
    a: *const f32,
    planes: *const f32,
    bases: &[u32; MR],
    offs: &[u32],
) -> [[std::arch::x86_64::__m256; 2]; R] {
    use std::arch::x86_64::*;
    // SAFETY: the caller guarantees the feature set and every index (see above).
    unsafe {
        let x: [*const f32; R] = std::array::from_fn(|m| planes.add(bases[m] as usize));
        let mut acc = [[[_mm256_setzero_ps(); 2]; R]; S];
        let whole = offs.len() / S * S;
        for kk in (0..whole).step_by(S) {
            for (s, acc) in acc.iter_mut().enumerate() {
                tap(acc, a, &x, kk + s, offs[kk + s] as usize);
            }
        }
        for (s, kk) in (whole..offs.len()).enumerate() {
            tap(&mut acc[s], a, &x, kk, offs[kk] as usize);
        }
        let mut sum = acc[0];
        for part in &acc[1..] {
            for (row, p) in sum.iter_mut().zip(part) {
                row[0] = _mm256_add_ps(row[0], p[0]);
                row[1] = _mm256_add_ps(row[1], p[1]);
            }
        }
        sum
    }
}

/// One tap of [`sum_tile`]: `acc[m] += a[kk] · x[m][off]` for every row `m`. (A function,
/// not a closure: a closure is not inlined into the AVX2 caller and would be called per
/// tap, compiled without AVX2.)
///
/// # Safety
/// As [`sum_tile`], for tap `kk` at offset `off`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tap<const R: usize>(
    acc: &mut [[std::arch::x86_64::__m256; 2]; R],
    a: *const f32,
    x: &[*const f32; R],
    kk: usize,
    off: usize,
) {
    use std::arch::x86_64::*;
    // SAFETY: the caller guarantees the feature set and the reads (see above).
    unsafe {
        let a0 = _mm256_loadu_ps(a.add(kk * NR));
        let a1 = _mm256_loadu_ps(a.add(kk * NR + 8));
        for m in 0..R {
            let b = _mm256_broadcast_ss(&*x[m].add(off));
            acc[m][0] = _mm256_fmadd_ps(b, a0, acc[m][0]);
            acc[m][1] = _mm256_fmadd_ps(b, a1, acc[m][1]);
        }
    }
}

/// One register tile of `rows ≤ 6` positions x 16 lanes:
/// `tile[m][o] = Σ_k a[k][o] · planes[bases[m] + offs[k]]` for `m < rows` (the rest of `tile`
/// is left as it is). A short tile (the last of a 7x7 map has one position) runs with that
/// many rows of accumulators, and with 3 rows or fewer its `K` sum split 2 or 4 ways
/// (`sum_tile`'s `S`): one row's two FMA chains alone waited on the FMA latency, so the
/// one-position tail of a 7x7 map cost two thirds of a whole tile. Split, the 7x7
/// convolutions and the input gradients with 7x7 phase classes ran 1-4 % faster
/// (in-process, alternating, 20 runs each).
///
/// # Safety
/// As [`sum_tile`] with `R = rows`; `1 ≤ rows ≤ 6`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_rows(
    rows: usize,
    a: *const f32,
    planes: *const f32,
    bases: &[u32; MR],
    offs: &[u32],
    tile: &mut [[f32; NR]; MR],
) {
    use std::arch::x86_64::*;
    #[inline(always)]
    unsafe fn store<const R: usize>(acc: [[__m256; 2]; R], tile: &mut [[f32; NR]; MR]) {
        for (m, acc) in acc.iter().enumerate() {
            // SAFETY: tile[m] holds 16 floats (R ≤ MR); AVX is present (the caller's).
            unsafe {
                _mm256_storeu_ps(tile[m].as_mut_ptr(), acc[0]);
                _mm256_storeu_ps(tile[m].as_mut_ptr().add(8), acc[1]);
            }
        }
    }
    // SAFETY: the caller guarantees the reads for the first `rows` positions.
    unsafe {
        match rows {
            6 => store(sum_tile::<6, 1>(a, planes, bases, offs), tile),
            5 => store(sum_tile::<5, 1>(a, planes, bases, offs), tile),
            4 => store(sum_tile::<4, 1>(a, planes, bases, offs), tile),
            3 => store(sum_tile::<3, 2>(a, planes, bases, offs), tile),
            2 => store(sum_tile::<2, 2>(a, planes, bases, offs), tile),
            1 => store(sum_tile::<1, 4>(a, planes, bases, offs), tile),
            _ => unreachable!("a tile has 1 to 6 rows"),
        }
    }
}

/// One 6x16 register tile stored channel-major: `out[o·stride + m]` = the sum of
/// [`tile_rows`]'s `tile[m][o]`, transposed in registers (per 8 lanes, rows 0–3 of each
/// lane become one 4-float store and rows 4–5 one 2-float store).
///
/// # Safety
/// As [`sum_tile`], and `out[o·stride + m]` must be writable for every `o < 16`, `m < 6`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_6x16_to_channels(
    a: *const f32,
    planes: *const f32,
    bases: &[u32; MR],
    offs: &[u32],
    out: *mut f32,
    stride: usize,
) {
    use std::arch::x86_64::*;
    // SAFETY: the caller guarantees the reads and that every store lands in `out`.
    unsafe {
        let acc = sum_tile::<MR, 1>(a, planes, bases, offs);
        // halves[h][m]: lanes 8h..8h + 8 of position m.
        let halves: [[__m256; MR]; 2] = std::array::from_fn(|h| std::array::from_fn(|m| acc[m][h]));
        for (h, r) in halves.iter().enumerate() {
            // Within each 128-bit half (lanes l and l + 4 alike):
            // t01 = [r0[l], r1[l], r0[l+1], r1[l+1]] for l = 0 (lo) and 2 (hi), etc.
            let t01_lo = _mm256_unpacklo_ps(r[0], r[1]);
            let t01_hi = _mm256_unpackhi_ps(r[0], r[1]);
            let t23_lo = _mm256_unpacklo_ps(r[2], r[3]);
            let t23_hi = _mm256_unpackhi_ps(r[2], r[3]);
            let t45_lo = _mm256_unpacklo_ps(r[4], r[5]);
            let t45_hi = _mm256_unpackhi_ps(r[4], r[5]);
            // Rows 0–3 of lanes (0, 4), (1, 5), (2, 6), (3, 7).
            let rows03 = [
                _mm256_shuffle_ps::<0x44>(t01_lo, t23_lo),
                _mm256_shuffle_ps::<0xEE>(t01_lo, t23_lo),
                _mm256_shuffle_ps::<0x44>(t01_hi, t23_hi),
                _mm256_shuffle_ps::<0xEE>(t01_hi, t23_hi),
            ];
            // Rows 4–5 of lanes (0, 4) and (1, 5) in t45_lo's low and high pairs, of
            // (2, 6) and (3, 7) in t45_hi's.
            let rows45 = [t45_lo, t45_lo, t45_hi, t45_hi];
            for (l, (&r03, &r45)) in rows03.iter().zip(&rows45).enumerate() {
                // Lane l's pair of rows 4–5: the low pair of t45 for even l, the high one
                // for odd l.
                let r45 = if l % 2 == 0 {
                    r45
                } else {
                    _mm256_castpd_ps(_mm256_unpackhi_pd(
                        _mm256_castps_pd(r45),
                        _mm256_castps_pd(r45),
                    ))
                };
                for (half, lane) in [(0, l), (1, l + 4)] {
                    let dst = out.add((8 * h + lane) * stride);
                    let (r03, r45) = if half == 0 {
                        (_mm256_castps256_ps128(r03), _mm256_castps256_ps128(r45))
                    } else {
                        (
                            _mm256_extractf128_ps::<1>(r03),
                            _mm256_extractf128_ps::<1>(r45),
                        )
                    };
                    _mm_storeu_ps(dst, r03);
                    _mm_storel_epi64(dst.add(4).cast(), _mm_castps_si128(r45));
                }
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn tile_rows(
    _rows: usize,
    _a: *const f32,
    _planes: *const f32,
    _bases: &[u32; MR],
    _offs: &[u32],
    _tile: &mut [[f32; NR]; MR],
) {
    unreachable!("implicit GEMM is only dispatched on x86-64 with AVX2")
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn tile_6x16_to_channels(
    _a: *const f32,
    _planes: *const f32,
    _bases: &[u32; MR],
    _offs: &[u32],
    _out: *mut f32,
    _stride: usize,
) {
    unreachable!("implicit GEMM is only dispatched on x86-64 with AVX2")
}

#[cfg(test)]
mod tests {
    use super::super::kernels::{
        conv_backward_w_im2col, conv_backward_x_im2col, conv_forward_im2col,
    };
    use super::super::test_inputs::{close, data};
    use super::*;

    /// `([n, c, h, w], [kh, kw], [sh, sw], [ph, pw], co)`.
    type Case = ([usize; 4], [usize; 2], [usize; 2], [usize; 2], usize);

    /// Kernels, strides and paddings the trunks use, and awkward ones: channel counts off
    /// the 16-lane block, position and tap counts off the 6-row tile, padding wider than the
    /// stride, non-square everything.
    const CASES: &[Case] = &[
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
        // Rows long enough for the planes' vector moves (8 floats, 16 at stride 2), and
        // bodies of 4 to 7 floats in rows of 8 (two 4-float pieces).
        ([1, 2, 20, 37], [3, 3], [2, 2], [1, 1], 16),
        ([1, 2, 17, 19], [3, 3], [1, 1], [1, 1], 16),
        ([2, 3, 14, 13], [3, 3], [2, 2], [1, 1], 16),
        // Whole and partial 16-lane blocks on both sides (tiles stored from registers and
        // through the tile array), positions off the 6-row tile.
        ([2, 20, 9, 7], [3, 3], [1, 1], [1, 1], 24),
    ];

    /// Checks `implicit` against `reference` on every case: each gets the case's index, its
    /// geometry and `co`, and returns its result.
    fn agrees_with_im2col<'a>(
        what: &str,
        cases: impl IntoIterator<Item = &'a Case>,
        implicit: impl Fn(usize, &ConvGeom, usize) -> Vec<f32>,
        reference: impl Fn(usize, &ConvGeom, usize) -> Vec<f32>,
    ) {
        if !available() {
            eprintln!("no AVX2 + FMA: the implicit GEMM is not used on this CPU");
            return;
        }
        for (i, &(xd, kd, s, pad, co)) in cases.into_iter().enumerate() {
            let g = ConvGeom::new(xd, kd, s, pad);
            close(
                &implicit(i, &g, co),
                &reference(i, &g, co),
                &format!("{what}, case {i} ({g:?}, co {co})"),
            );
        }
    }

    fn input(i: usize, g: &ConvGeom) -> Vec<f32> {
        data(g.n * g.c * g.h * g.w, i)
    }

    fn weight(i: usize, g: &ConvGeom, co: usize) -> Vec<f32> {
        data(co * g.k(), 7 * i + 1)
    }

    fn output_grad(i: usize, g: &ConvGeom, co: usize) -> Vec<f32> {
        data(g.n * co * g.p(), 5 * i + 3)
    }

    /// The prefetch requests spread over a GEMM's tiles ask for every line of every part
    /// once, in order, and none past a part, whatever the part sizes and tile count.
    #[test]
    fn prefetch_requests_cover_every_line_once() {
        let buf = data(1000, 0);
        for (sizes, tiles) in [
            ([100, 0, 37], 7),
            ([0, 0, 0], 3),
            ([16, 16, 16], 1),
            ([1000, 5, 0], 262),
            ([33, 0, 64], 200),
        ] {
            let parts = [&buf[..sizes[0]], &buf[..sizes[1]], &buf[..sizes[2]]];
            let mut prefetch = Prefetch::new(parts);
            prefetch.spread_over(tiles);
            let mut got = Vec::new();
            for _ in 0..tiles {
                prefetch.step_with(|part, at| {
                    assert!(at < part.len(), "request past its part");
                    got.push((part.len(), at));
                });
            }
            let want: Vec<(usize, usize)> = sizes
                .iter()
                .flat_map(|&len| (0..len).step_by(16).map(move |at| (len, at)))
                .collect();
            assert_eq!(got, want, "parts {sizes:?} over {tiles} tiles");
        }
    }

    /// The implicit-GEMM forward agrees with im2col + `gemm`.
    #[test]
    fn implicit_forward_matches_im2col() {
        agrees_with_im2col(
            "forward",
            CASES,
            |i, g, co| conv_forward(&input(i, g), &weight(i, g, co), co, g, None, false).0,
            |i, g, co| conv_forward_im2col(&input(i, g), &weight(i, g, co), co, g, false).0,
        );
    }

    /// The implicit-GEMM input gradient (one GEMM per stride phase) agrees with
    /// `gemm` + col2im (or the flipped convolution), including a stride larger than the
    /// kernel, where some pixels get no gradient at all.
    #[test]
    fn implicit_input_gradient_matches_im2col() {
        agrees_with_im2col(
            "input gradient",
            CASES.iter().chain(&[
                ([2, 3, 9, 8], [1, 1], [3, 2], [0, 0], 18),
                ([1, 2, 6, 6], [2, 2], [1, 1], [3, 2], 4),
            ]),
            |i, g, co| conv_backward_x(&output_grad(i, g, co), &weight(i, g, co), co, g),
            |i, g, co| conv_backward_x_im2col(&output_grad(i, g, co), &weight(i, g, co), co, g),
        );
    }

    /// The input gradient added into a gradient already there is that gradient plus the
    /// input gradient, bit for bit (the sum autodiff would take), on the implicit GEMM and
    /// on the im2col path alike (cases where the implicit one does not pay off included).
    #[test]
    fn input_gradient_into_adds_exactly() {
        let extra = [
            ([2, 3, 9, 8], [1, 1], [3, 2], [0, 0], 18),
            ([1, 2, 6, 6], [2, 2], [1, 1], [3, 2], 4),
        ];
        for (i, &(xd, kd, s, pad, co)) in CASES.iter().chain(&extra).enumerate() {
            let g = ConvGeom::new(xd, kd, s, pad);
            let (dy, w) = (output_grad(i, &g, co), weight(i, &g, co));
            let earlier = data(g.n * g.c * g.h * g.w, 11 * i + 2);
            let dx = super::super::kernels::conv_backward_x(&dy, &w, co, &g);
            let mut acc = earlier.clone();
            super::super::kernels::conv_backward_x_into(&dy, &w, co, &g, &mut acc);
            for (j, ((a, e), d)) in acc.iter().zip(&earlier).zip(&dx).enumerate() {
                assert_eq!(
                    a.to_bits(),
                    (e + d).to_bits(),
                    "case {i} ({g:?}, co {co}), element {j}"
                );
            }
        }
    }

    /// The cases whose 1x1 stride-matched shortcut can share the planes, with that
    /// shortcut's geometry and channel count (off the 16-lane block).
    fn shortcut_cases() -> Vec<(usize, ConvGeom, usize, ConvGeom, usize)> {
        CASES
            .iter()
            .enumerate()
            .map(|(i, &(xd, kd, s, pad, co))| {
                let g = ConvGeom::new(xd, kd, s, pad);
                let short = ConvGeom::new(xd, [1, 1], s, [0, 0]);
                (i, g, co, short, co * 3 / 2 + 1)
            })
            .filter(|(_, g, _, short, _)| {
                (short.ho, short.wo) == (g.ho, g.wo) && g.ph < g.kh && g.pw < g.kw
            })
            .collect()
    }

    /// A convolution and its shortcut on shared planes give what each gives alone: both
    /// outputs and their moments, the summed input gradient, both weight gradients. Stride
    /// 1 and 2, taps in phase (0, 0) and (1, 1), a 7x7 kernel.
    #[test]
    fn shortcut_on_shared_planes_matches_separate_convolutions() {
        if !available() {
            return;
        }
        let cases = shortcut_cases();
        assert!(cases.len() >= 5, "shortcut cases: {}", cases.len());
        for (i, g, co, sg, co_s) in cases {
            let what = format!("case {i} ({g:?}, co {co}, shortcut co {co_s})");
            let (x, w, dy) = (input(i, &g), weight(i, &g, co), output_grad(i, &g, co));
            let (ws, dys) = (
                data(co_s * g.c, 11 * i + 2),
                data(g.n * co_s * g.p(), 3 * i + 5),
            );
            let short = Shortcut { w: &ws, co: co_s };
            let [(y, my), (ys, mys)] =
                conv_forward_with_shortcut(&x, &w, co, &g, None, true, Some(short));
            close(&y, &conv_forward_im2col(&x, &w, co, &g, false).0, &what);
            close(
                &ys,
                &conv_forward_im2col(&x, &ws, co_s, &sg, false).0,
                &what,
            );
            let (plain_m, plain_ms) = (
                conv_forward(&x, &w, co, &g, None, true).1,
                conv_forward(&x, &ws, co_s, &sg, None, true).1,
            );
            let flat = |m: &[(f32, f32)]| m.iter().flat_map(|&(a, b)| [a, b]).collect::<Vec<_>>();
            close(&flat(&my), &flat(&plain_m), &format!("{what}: moments"));
            close(
                &flat(&mys),
                &flat(&plain_ms),
                &format!("{what}: shortcut moments"),
            );

            let dx = conv_backward_x_with_shortcut(&dy, &w, co, &g, Some((short, &dys)));
            let want: Vec<f32> = conv_backward_x_im2col(&dy, &w, co, &g)
                .iter()
                .zip(conv_backward_x_im2col(&dys, &ws, co_s, &sg))
                .map(|(a, b)| a + b)
                .collect();
            close(&dx, &want, &format!("{what}: input gradient"));

            let (dw, dws) =
                conv_backward_w_with_shortcut(&x, &dy, co, &g, None, Some((co_s, &dys)));
            close(&dw, &conv_backward_w_im2col(&x, &dy, co, &g), &what);
            close(&dws, &conv_backward_w_im2col(&x, &dys, co_s, &sg), &what);
        }
    }

    /// The implicit-GEMM weight gradient (samples grouped) agrees with im2col + `gemm`.
    #[test]
    fn implicit_weight_gradient_matches_im2col() {
        agrees_with_im2col(
            "weight gradient",
            CASES,
            |i, g, co| conv_backward_w(&input(i, g), &output_grad(i, g, co), co, g, None),
            |i, g, co| conv_backward_w_im2col(&input(i, g), &output_grad(i, g, co), co, g),
        );
    }
}
