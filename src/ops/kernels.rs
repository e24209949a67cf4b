//! Host-side data-movement kernels for im2col convolution (f32, NCHW).
//!
//! One sample at a time: gather its patches (`im2col`) into a reused ~1 MB buffer, multiply
//! with the `gemm` crate (the GEMM flex itself uses), and for the input gradient scatter
//! the columns back (`col2im`). Samples run in parallel on rayon's global pool (the pool
//! flex uses), each GEMM single-threaded, so the two never oversubscribe the cores.
//!
//! Why not the backend's matmul on a whole-batch column tensor: measured on flex, that
//! tensor is 9x the input (75 MB for 64x32x32x32) and streaming it through memory, plus
//! the host round trip and a transposed copy for the weight gradient, made the forward
//! ~2x and the backward ~2.5x *slower* than burn's stock conv.

use rayon::prelude::*;
use std::mem::MaybeUninit;

/// A buffer of `len` floats that the caller writes completely before reading: skips the
/// `memset` of `vec![0.0; len]` (≈ 3 % of a training step, measured with perf).
pub(super) fn uninit(len: usize) -> Vec<MaybeUninit<f32>> {
    let mut v = Vec::with_capacity(len);
    // SAFETY: MaybeUninit<f32> needs no initialisation.
    unsafe { v.set_len(len) };
    v
}

/// The buffer of [`uninit`] once every element has been written.
///
/// # Safety
/// Every element of `v` must have been initialised.
pub(super) unsafe fn assume_init(v: Vec<MaybeUninit<f32>>) -> Vec<f32> {
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: same layout; the caller guarantees initialisation; ownership moves over.
    unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<f32>(), v.len(), v.capacity()) }
}

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

/// The one `gemm` call behind [`sgemm`] and [`sgemm_into`]: `dst[M,N] (+)= a[M,K] · b[K,N]`
/// on row/column strides, single-threaded (the callers parallelise over samples, so gemm's
/// own threading would only oversubscribe). The bounds of `a` and `b` are checked here.
///
/// # Safety
/// `dst` must be valid for writes of a row-major `M×N` block, and for reads when
/// `accumulate` (gemm reads `dst` only then).
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn sgemm_raw(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    accumulate: bool,
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
) {
    assert!(m == 0 || k == 0 || a.len() > (m - 1) * a_rs + (k - 1) * a_cs);
    assert!(n == 0 || k == 0 || b.len() > (k - 1) * b_rs + (n - 1) * b_cs);
    // SAFETY: the asserts bound every index gemm reads in a and b; the caller vouches for dst.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// `dst[M,N] (+)= a[M,K] · b[K,N]` into an initialised buffer (see [`sgemm_raw`]).
#[allow(clippy::too_many_arguments)]
#[inline]
fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    a: &[f32],
    a_strides: (usize, usize),
    b: &[f32],
    b_strides: (usize, usize),
) {
    assert!(dst.len() >= m * n);
    // SAFETY: dst is an initialised slice of at least M×N floats.
    unsafe {
        sgemm_raw(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            accumulate,
            a,
            a_strides,
            b,
            b_strides,
        )
    }
}

/// [`sgemm`] overwriting an uninitialised `dst` (gemm does not read it when not
/// accumulating), so output buffers need no zeroing.
#[allow(clippy::too_many_arguments)]
#[inline]
fn sgemm_into(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [MaybeUninit<f32>],
    a: &[f32],
    a_strides: (usize, usize),
    b: &[f32],
    b_strides: (usize, usize),
) {
    assert!(dst.len() >= m * n);
    if k == 0 {
        // gemm would leave dst untouched: an empty sum is zero.
        dst[..m * n].fill(MaybeUninit::new(0.0));
        return;
    }
    // SAFETY: dst holds at least M×N floats, written (never read) without accumulation.
    unsafe {
        sgemm_raw(
            m,
            n,
            k,
            dst.as_mut_ptr().cast(),
            false,
            a,
            a_strides,
            b,
            b_strides,
        )
    }
}

impl ConvGeom {
    /// A 1x1, stride-1, unpadded convolution needs no gather: the image is the column
    /// matrix.
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.sh == 1 && self.sw == 1 && self.ph == 0 && self.pw == 0
    }

    /// Stride 1 with an output the size of the input (`2·pad = kernel − 1` on both axes).
    fn is_same_size_stride1(&self) -> bool {
        self.sh == 1 && self.sw == 1 && self.ho == self.h && self.wo == self.w
    }
}

/// Gathers the patches of one sample `x_n` (`[C, H, W]`) into `cols` (`[C*KH*KW, HO*WO]`,
/// row `(c*KH + i)*KW + j`, matching a weight `[CO, C, KH, KW]` viewed as `[CO, K]`).
/// Every element of `cols` is written (padding as zero), so the buffer can be reused.
pub(crate) fn im2col_sample(x_n: &[f32], g: &ConvGeom, cols: &mut [f32]) {
    if g.is_same_size_stride1() {
        return im2col_same_stride1(x_n, g, cols);
    }
    let p = g.p();
    let plane = g.h * g.w;
    for c in 0..g.c {
        let src = &x_n[c * plane..(c + 1) * plane];
        for i in 0..g.kh {
            let (oh_lo, oh_hi) = ConvGeom::valid_range(g.h, g.ho, g.sh, i, g.ph);
            for j in 0..g.kw {
                let (ow_lo, ow_hi) = ConvGeom::valid_range(g.w, g.wo, g.sw, j, g.pw);
                let r = (c * g.kh + i) * g.kw + j;
                let row = &mut cols[r * p..(r + 1) * p];
                if ow_lo >= ow_hi {
                    row.fill(0.0);
                    continue;
                }
                row[..oh_lo * g.wo].fill(0.0);
                row[oh_hi * g.wo..].fill(0.0);
                zero_columns(row, g.wo, oh_lo..oh_hi, (0..ow_lo).chain(ow_hi..g.wo));
                for oh in oh_lo..oh_hi {
                    let ih = oh * g.sh + i - g.ph;
                    let srow = &src[ih * g.w..(ih + 1) * g.w];
                    let drow = &mut row[oh * g.wo..(oh + 1) * g.wo];
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
    }
}

/// [`im2col_sample`] for a stride-1 convolution whose output is the input's size (3x3 pad 1,
/// 5x5 pad 2, ...): every column row is the plane shifted by a constant offset, so it is one
/// contiguous copy plus zeroed borders, instead of one short copy per output row (the
/// per-row `memcpy` calls were most of im2col's cost on 7x7–28x28 maps).
fn im2col_same_stride1(x_n: &[f32], g: &ConvGeom, cols: &mut [f32]) {
    let (h, w) = (g.h, g.w);
    let plane = h * w;
    for c in 0..g.c {
        let src = &x_n[c * plane..(c + 1) * plane];
        for i in 0..g.kh {
            let (oh_lo, oh_hi) = ConvGeom::valid_range(h, h, 1, i, g.ph);
            for j in 0..g.kw {
                let (ow_lo, ow_hi) = ConvGeom::valid_range(w, w, 1, j, g.pw);
                let r = (c * g.kh + i) * g.kw + j;
                let row = &mut cols[r * plane..(r + 1) * plane];
                if oh_lo >= oh_hi || ow_lo >= ow_hi {
                    row.fill(0.0);
                    continue;
                }
                // Output (oh, ow) reads input (oh + i - ph, ow + j - pw): a flat offset.
                let first = oh_lo * w + ow_lo;
                let last = (oh_hi - 1) * w + ow_hi;
                let src_first = (oh_lo + i - g.ph) * w + ow_lo + j - g.pw;
                row[..first].fill(0.0);
                row[first..last].copy_from_slice(&src[src_first..src_first + (last - first)]);
                row[last..].fill(0.0);
                // The copy wrapped across row ends: zero the out-of-image columns.
                zero_columns(row, w, oh_lo..oh_hi, (0..ow_lo).chain(ow_hi..w));
            }
        }
    }
}

/// Zeroes `columns` of rows `rows` in a row-major block `width` wide, column by column: a
/// strided store loop, where a per-row `fill` of one or two floats compiles to a `memset`
/// call each (≈ 2.5 % of a 28 px training step, measured with perf).
#[inline]
fn zero_columns(
    block: &mut [f32],
    width: usize,
    rows: std::ops::Range<usize>,
    columns: impl Iterator<Item = usize>,
) {
    if rows.is_empty() {
        return;
    }
    for col in columns {
        for v in block[rows.start * width + col..]
            .iter_mut()
            .step_by(width)
            .take(rows.len())
        {
            *v = 0.0;
        }
    }
}

/// Adjoint of [`im2col_sample`]: adds the columns `[C*KH*KW, HO*WO]` of one sample back
/// into its image `dx_n` (`[C, H, W]`, accumulated, not overwritten).
pub(crate) fn col2im_sample(cols: &[f32], g: &ConvGeom, dx_n: &mut [f32]) {
    let p = g.p();
    let plane = g.h * g.w;
    for c in 0..g.c {
        let dst = &mut dx_n[c * plane..(c + 1) * plane];
        for i in 0..g.kh {
            let (oh_lo, oh_hi) = ConvGeom::valid_range(g.h, g.ho, g.sh, i, g.ph);
            for j in 0..g.kw {
                let (ow_lo, ow_hi) = ConvGeom::valid_range(g.w, g.wo, g.sw, j, g.pw);
                if ow_lo >= ow_hi {
                    continue;
                }
                let r = (c * g.kh + i) * g.kw + j;
                let row = &cols[r * p..(r + 1) * p];
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
    }
}

thread_local! {
    /// Each thread's column buffer, kept between calls (see [`with_scratch`]).
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's scratch buffer of `len` floats (contents unspecified: callers
/// overwrite what they read). The buffer lives as long as the thread (rayon's workers: the
/// process), grown to the largest `K*P` seen, so a convolution does not allocate and zero a
/// fresh ~1 MB buffer per task and call. A nested call (not made by these kernels) gets a
/// buffer of its own.
pub(super) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
            f(&mut buf[..len])
        }
        Err(_) => f(&mut vec![0.0; len]),
    })
}

/// Forward `y[n] = conv(x[n], w)`. Returns `[N, CO, HO*WO]`.
///
/// On x86-64 with AVX2 + FMA this is the implicit GEMM of [`super::implicit_gemm`] (no
/// column matrix) where it is faster; elsewhere [`conv_forward_im2col`].
///
/// With `norm`, the input is `max(x·scale[c] + shift[c], 0)` per channel: applied as the
/// implicit GEMM copies `x` into its planes, or written out first on the im2col path.
///
/// With `stats`, also the output's per-channel batch statistics, from plane moments taken
/// while each sample's output is in cache: a BatchNorm that follows then need not read the
/// map for them.
pub(crate) fn conv_forward(
    x: &[f32],
    w: &[f32],
    co: usize,
    g: &ConvGeom,
    norm: Option<NormRelu>,
    stats: bool,
) -> (Vec<f32>, Option<Stats>) {
    let (y, table) = if super::winograd::pays_off(co, g) {
        super::winograd::conv_forward(x, w, co, g, norm, stats)
    } else if super::implicit_gemm::available() && super::implicit_gemm::pays_off(co, g) {
        super::implicit_gemm::conv_forward(x, w, co, g, norm, stats)
    } else {
        match norm {
            Some(nr) => conv_forward_im2col(&nr.apply(x, g), w, co, g, stats),
            None => conv_forward_im2col(x, w, co, g, stats),
        }
    };
    let stats = stats.then(|| channel_moments(&table, co, g.p()));
    (y, stats)
}

/// Per-channel batch statistics of a `[N, C, HW]` map: `(mean, biased var)`.
pub(crate) type Stats = (Vec<f32>, Vec<f32>);

/// A forward convolution's output `[N, CO, P]` and, when asked for, its per-plane
/// [`plane_moments`] (`[N][CO]`, empty otherwise).
pub(super) type ConvOutput = (Vec<f32>, Vec<(f32, f32)>);

/// A forward convolution's output `[N, CO, P]`, one sample per task: `write(n, y_n)` must
/// write every element of sample `n`'s `[CO, P]` block. With `moments`, also each plane's
/// [`plane_moments`] (`[N][CO]`), taken right after the sample is written, while it is in
/// cache.
pub(super) fn conv_output(
    n: usize,
    co: usize,
    p: usize,
    moments: bool,
    write: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync,
) -> ConvOutput {
    let [out] = conv_outputs(n, [co], p, moments, |i, [y_n]| write(i, y_n));
    out
}

/// [`conv_output`] for `M` convolutions of one input computed together (a block's main
/// convolution and its shortcut): `write(n, [y_n, …])` writes sample `n` of every output,
/// output `m` having `cos[m]` channels.
pub(super) fn conv_outputs<const M: usize>(
    n: usize,
    cos: [usize; M],
    p: usize,
    moments: bool,
    write: impl Fn(usize, &mut [&mut [MaybeUninit<f32>]; M]) + Sync,
) -> [ConvOutput; M] {
    let mut ys: [Vec<MaybeUninit<f32>>; M] = cos.map(|co| uninit(n * co * p));
    // Each sample's block of every output, split off in order (cheap: N entries).
    let mut rest: [&mut [MaybeUninit<f32>]; M] = ys.each_mut().map(|y| y.as_mut_slice());
    let samples: Vec<[&mut [MaybeUninit<f32>]; M]> = (0..n)
        .map(|_| {
            std::array::from_fn(|m| {
                let (y_n, tail) = std::mem::take(&mut rest[m]).split_at_mut(cos[m] * p);
                rest[m] = tail;
                y_n
            })
        })
        .collect();
    let tables: Vec<[Vec<(f32, f32)>; M]> = samples
        .into_par_iter()
        .enumerate()
        .map(|(i, mut y_n)| {
            write(i, &mut y_n);
            y_n.map(|y_n| {
                if !moments || p == 0 {
                    return Vec::new();
                }
                // SAFETY: `write` wrote every element of the sample (the caller's
                // contract); MaybeUninit<f32> has f32's layout.
                let y_n = unsafe { &*(y_n as *const [MaybeUninit<f32>] as *const [f32]) };
                y_n.chunks_exact(p).map(plane_moments).collect()
            })
        })
        .collect();
    let mut ys = ys.into_iter();
    std::array::from_fn(|m| {
        let table = tables.iter().flat_map(|t| t[m].iter().copied()).collect();
        // SAFETY: every sample's block of every output was written by `write`.
        (unsafe { assume_init(ys.next().expect("M outputs")) }, table)
    })
}

/// A per-channel BatchNorm + ReLU, `max(v·scale[c] + shift[c], 0)`, that a convolution
/// applies to its input as it reads it (`ops::batch_norm_relu_conv2d`): the normalised map
/// is then never written out nor kept for the backward.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NormRelu<'a> {
    /// Per input channel.
    pub scale: &'a [f32],
    /// Per input channel.
    pub shift: &'a [f32],
}

impl NormRelu<'_> {
    /// The normalised input written out (`[N, C, H, W]`), for the paths that read it more
    /// than once (im2col).
    pub(super) fn apply(&self, x: &[f32], g: &ConvGeom) -> Vec<f32> {
        bn_apply(x, self.scale, self.shift, g.c, g.h * g.w, Epilogue::Relu)
    }
}

/// `max(v·a + b, 0)`: BatchNorm's scale and shift, then ReLU. The one definition for the
/// separate and the fused ops, so they agree bit for bit. (A select rather than `f32::max`,
/// whose NaN rule costs a compare and blend per vector; both give 0 for NaN.)
#[inline(always)]
pub(super) fn norm_relu(v: f32, a: f32, b: f32) -> f32 {
    let t = v * a + b;
    if t > 0.0 { t } else { 0.0 }
}

/// Forward: `y[n] = w[CO,K] · im2col(x[n])`, one sample per task with the thread's column
/// buffer (`K*P` floats, ~1 MB: stays in L2 instead of streaming a 9x-input-sized matrix
/// through memory). Returns `[N, CO, HO*WO]`.
/// With `moments`, also each output plane's [`plane_moments`] (`[N][CO]`).
pub(crate) fn conv_forward_im2col(
    x: &[f32],
    w: &[f32],
    co: usize,
    g: &ConvGeom,
    moments: bool,
) -> ConvOutput {
    let (k, p) = (g.k(), g.p());
    let x_len = g.c * g.h * g.w;
    // sgemm_into writes the sample's whole [CO, P] block.
    conv_output(g.n, co, p, moments, |n, y_n| {
        let x_n = &x[n * x_len..(n + 1) * x_len];
        if g.is_pointwise() {
            sgemm_into(co, p, k, y_n, w, (k, 1), x_n, (p, 1));
        } else {
            with_scratch(k * p, |cols| {
                im2col_sample(x_n, g, cols);
                sgemm_into(co, p, k, y_n, w, (k, 1), cols, (p, 1));
            });
        }
    })
}

/// Input gradient: `dx[n] = col2im(wᵀ · dy[n])`. Returns `[N, C, H, W]`.
///
/// A same-size stride-1 convolution's input gradient is itself such a convolution, of `dy`
/// with the kernel flipped and its channel axes swapped; that form ([`conv_backward_x_flipped`])
/// is taken there: its GEMM sums over `CO·KH·KW` instead of `CO` terms and it gathers instead
/// of scattering, so `dx` is written once instead of zeroed and accumulated.
///
/// On x86-64 with AVX2 + FMA, where it pays off, the input gradient is instead the implicit
/// GEMM of [`super::implicit_gemm`], one per stride phase of `dx`.
pub(crate) fn conv_backward_x(dy: &[f32], w: &[f32], co: usize, g: &ConvGeom) -> Vec<f32> {
    if super::winograd::pays_off_input_grad(co, g) {
        return super::winograd::conv_backward_x(dy, w, co, g, None).expect("no accumulator given");
    }
    if super::implicit_gemm::available() && super::implicit_gemm::pays_off_input_grad(co, g) {
        return super::implicit_gemm::conv_backward_x(dy, w, co, g);
    }
    conv_backward_x_im2col(dy, w, co, g)
}

/// [`conv_backward_x`] added into `acc` (`[N, C, H, W]`, a gradient of the same input that
/// is already there): on the implicit GEMM each sample's `dx` is added while in cache; the
/// im2col path adds the finished map, on the pool. Either way the sum is `acc + dx`, the bits
/// autodiff's own sum of the two gradients gives.
pub(crate) fn conv_backward_x_into(
    dy: &[f32],
    w: &[f32],
    co: usize,
    g: &ConvGeom,
    acc: &mut [f32],
) {
    if super::winograd::pays_off_input_grad(co, g) {
        super::winograd::conv_backward_x(dy, w, co, g, Some(acc));
        return;
    }
    if super::implicit_gemm::available() && super::implicit_gemm::pays_off_input_grad(co, g) {
        return super::implicit_gemm::conv_backward_x_into(dy, w, co, g, acc);
    }
    let dx = conv_backward_x_im2col(dy, w, co, g);
    assert_eq!(acc.len(), dx.len(), "input gradient accumulator size");
    let x_len = (g.c * g.h * g.w).max(1);
    acc.par_chunks_mut(x_len)
        .zip(dx.par_chunks(x_len))
        .for_each(|(a, d)| a.iter_mut().zip(d).for_each(|(a, d)| *a += *d));
}

/// [`conv_backward_x`] through `gemm` (and col2im where the flipped form does not apply).
pub(crate) fn conv_backward_x_im2col(dy: &[f32], w: &[f32], co: usize, g: &ConvGeom) -> Vec<f32> {
    if g.is_same_size_stride1() && !g.is_pointwise() {
        return conv_backward_x_flipped(dy, w, co, g);
    }
    let (k, p) = (g.k(), g.p());
    let x_len = g.c * g.h * g.w;
    let mut dx = uninit(g.n * x_len);
    dx.par_chunks_mut(x_len).enumerate().for_each(|(n, dx_n)| {
        let dy_n = &dy[n * co * p..(n + 1) * co * p];
        if g.is_pointwise() {
            sgemm_into(k, p, co, dx_n, w, (1, k), dy_n, (p, 1));
            return;
        }
        // Zeroed here, per sample, so the scatter-add finds it in cache (one pass over dx
        // instead of a memset of all of it first).
        dx_n.fill(MaybeUninit::new(0.0));
        // SAFETY: every element was just initialised.
        let dx_n = unsafe { &mut *(dx_n as *mut [MaybeUninit<f32>] as *mut [f32]) };
        with_scratch(k * p, |dcols| {
            sgemm(k, p, co, dcols, false, w, (1, k), dy_n, (p, 1));
            col2im_sample(dcols, g, dx_n);
        });
    });
    // SAFETY: every sample's block was written (by sgemm_into, or zeroed then accumulated).
    unsafe { assume_init(dx) }
}

/// [`conv_backward_x`] for a same-size stride-1 convolution: `dx = conv(dy, w')` with
/// `w'[c, o, i, j] = w[o, c, KH−1−i, KW−1−j]` and padding `KH−1−PH` (equal to `PH` here).
fn conv_backward_x_flipped(dy: &[f32], w: &[f32], co: usize, g: &ConvGeom) -> Vec<f32> {
    let (kh, kw) = (g.kh, g.kw);
    let taps = kh * kw;
    let mut wf = vec![0.0f32; g.c * co * taps];
    for o in 0..co {
        for c in 0..g.c {
            for i in 0..kh {
                for j in 0..kw {
                    wf[(c * co + o) * taps + i * kw + j] =
                        w[(o * g.c + c) * taps + (kh - 1 - i) * kw + (kw - 1 - j)];
                }
            }
        }
    }
    let gt = ConvGeom::new(
        [g.n, co, g.h, g.w],
        [kh, kw],
        [1, 1],
        [kh - 1 - g.ph, kw - 1 - g.pw],
    );
    debug_assert_eq!((gt.ho, gt.wo), (g.h, g.w));
    conv_forward_im2col(dy, &wf, g.c, &gt, false).0
}

/// Weight gradient `dw = Σ_n dy[n] ⋆ x[n]`. Returns `[CO, K]`.
///
/// The implicit GEMM of [`super::implicit_gemm`] where it runs and pays off; elsewhere
/// [`conv_backward_w_im2col`].
///
/// `norm` as in [`conv_forward`]: the normalised input is recomputed from `x`.
pub(crate) fn conv_backward_w(
    x: &[f32],
    dy: &[f32],
    co: usize,
    g: &ConvGeom,
    norm: Option<NormRelu>,
) -> Vec<f32> {
    if super::implicit_gemm::available() && super::implicit_gemm::pays_off_weight_grad(co, g) {
        return super::implicit_gemm::conv_backward_w(x, dy, co, g, norm);
    }
    match norm {
        Some(nr) => conv_backward_w_im2col(&nr.apply(x, g), dy, co, g),
        None => conv_backward_w_im2col(x, dy, co, g),
    }
}

/// Weight gradient: `dw = Σ_n dy[n] · im2col(x[n])ᵀ`, accumulated per task and summed.
/// Returns `[CO, K]`.
///
/// Each task accumulates the transpose, `dwᵀ[K,CO] += cols[n][K,P] · dy[n]ᵀ[P,CO]`: the
/// large operand (the columns) is then read row by row when the GEMM packs it, where the
/// direct form packs it transposed, striding `P` floats per element (measured: the direct
/// form's packing made the 28x28 weight gradient ~1.5x slower than the forward).
pub(crate) fn conv_backward_w_im2col(x: &[f32], dy: &[f32], co: usize, g: &ConvGeom) -> Vec<f32> {
    let (k, p) = (g.k(), g.p());
    let x_len = g.c * g.h * g.w;
    let dw_t = sum_over_ranges(
        g.n,
        || vec![0.0f32; k * co],
        |acc, samples| {
            for n in samples {
                let x_n = &x[n * x_len..(n + 1) * x_len];
                let dy_n = &dy[n * co * p..(n + 1) * co * p];
                // [K,P] · [P,CO] added to the range's sum: dy read transposed through
                // strides (it is the small one).
                if g.is_pointwise() {
                    sgemm(k, co, p, acc, true, x_n, (p, 1), dy_n, (1, p));
                } else {
                    with_scratch(k * p, |cols| {
                        im2col_sample(x_n, g, cols);
                        sgemm(k, co, p, acc, true, cols, (p, 1), dy_n, (1, p));
                    });
                }
            }
        },
        add_into,
    );
    weight_from_tap_major(&dw_t, co, co, k)
}

/// How many ranges [`sum_over_ranges`] cuts its work into: two per thread of the pool, so a
/// thread that falls behind (a core taken by the camera pipeline, say) can hand one on.
pub(super) fn sum_ranges() -> usize {
    rayon::current_num_threads().max(1) * 2
}

/// `work(acc, range)` over `0..n` cut into [`sum_ranges`] contiguous ranges (fewer if `n` is
/// smaller), each with its own accumulator from `init`, then the accumulators summed by `add`.
///
/// Why not rayon's `fold` + `reduce`: they start an accumulator for every piece rayon splits
/// off and for every reduce (counted: 32 per weight-gradient call on 2 threads, each a zeroed
/// `[K, CO]` sum, 590 KiB for the 7x7 layers, that the reduce then reads back). In-process,
/// alternating, the 7x7 weight gradient ran 3.5-4 % faster with one range per thread; one,
/// two and four per thread measured alike.
pub(super) fn sum_over_ranges<A: Send>(
    n: usize,
    init: impl Fn() -> A + Sync,
    work: impl Fn(&mut A, std::ops::Range<usize>) + Sync,
    add: impl Fn(A, A) -> A,
) -> A {
    let ranges = sum_ranges().min(n.max(1));
    let sums: Vec<A> = (0..ranges)
        .into_par_iter()
        .map(|i| {
            let mut acc = init();
            work(&mut acc, i * n / ranges..(i + 1) * n / ranges);
            acc
        })
        .collect();
    sums.into_iter().reduce(add).unwrap_or_else(init)
}

/// `a += b`, returning `a`: the reduce step of per-task weight-gradient accumulators.
pub(super) fn add_into(mut a: Vec<f32>, b: Vec<f32>) -> Vec<f32> {
    for (x, y) in a.iter_mut().zip(&b) {
        *x += *y;
    }
    a
}

/// The `[CO, K]` weight gradient from a tap-major accumulator `[K][stride]` whose first `co`
/// entries per row are the output channels.
pub(super) fn weight_from_tap_major(acc: &[f32], stride: usize, co: usize, k: usize) -> Vec<f32> {
    if co == 0 {
        // No channels (an absent shortcut): nothing to read, and rows of stride 0.
        return Vec::new();
    }
    let mut dw = uninit(co * k);
    for (r, row) in acc.chunks_exact(stride).take(k).enumerate() {
        for (o, v) in row.iter().take(co).enumerate() {
            dw[o * k + r].write(*v);
        }
    }
    // SAFETY: (r, o) covers every index o*k + r of the [CO, K] result once.
    unsafe { assume_init(dw) }
}

/// Whether the CPU has AVX2 and FMA (std caches the check). The crate is built for the
/// baseline x86-64 (SSE2), so a binary runs on any x86-64; the BatchNorm plane loops below
/// also have a copy compiled for AVX2, twice as wide, taken where the CPU has it.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(super) fn has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

/// Runs `$call` (calls of `#[inline(always)]` functions) in a function compiled for AVX2 and
/// FMA when the CPU has them, else as built. The arithmetic is the same either way (Rust
/// never contracts `a * b + c` into an FMA), so results do not depend on the CPU.
macro_rules! simd_dispatch {
    (|$($arg:ident: $ty:ty),*| -> $ret:ty $call:block) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx2,fma")]
            fn wide($($arg: $ty),*) -> $ret $call
            if has_avx2() {
                // SAFETY: the CPU has AVX2 and FMA (checked just above).
                return unsafe { wide($($arg),*) };
            }
        }
        $call
    }};
}
pub(super) use simd_dispatch;

/// `g` where the pre-activation `pre` is positive, `+0.0` elsewhere (ReLU's backward), as a
/// bit mask rather than a branch on the comparison.
#[inline(always)]
fn relu_gate(pre: f32, g: f32) -> f32 {
    f32::from_bits(g.to_bits() & u32::from(pre > 0.0).wrapping_neg())
}

/// `Σ f(v)` over one plane in four 8-lane chains: element `i` of each 32 goes to lane
/// `i % 32`; what is left past the last 32 goes 8 at a time into lanes 0–7, then one by one
/// into a scalar tail; then the lanes ([`lanes_total`]), then the tail. [`moments_avx2`]
/// keeps this order exactly, so both give the same bits.
#[inline(always)]
fn chains_sum(p: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [[0.0f32; 8]; 4];
    let body = p.chunks_exact(32);
    let rest = body.remainder();
    for c in body {
        for (v, acc) in acc.iter_mut().enumerate() {
            for l in 0..8 {
                acc[l] += f(c[8 * v + l]);
            }
        }
    }
    let eights = rest.chunks_exact(8);
    let tail = eights.remainder();
    for c in eights {
        for l in 0..8 {
            acc[0][l] += f(c[l]);
        }
    }
    lanes_total(&acc) + tail.iter().fold(0.0f32, |t, v| t + f(*v))
}

/// The four chains' lanes added: pairwise across the chains (`(0 + 1) + (2 + 3)`, lane by
/// lane), then the 8 lanes in order. Few serial adds, so short planes (7x7) stay cheap.
#[inline(always)]
fn lanes_total(acc: &[[f32; 8]; 4]) -> f32 {
    let [a, b, c, d] = acc;
    (0..8).fold(0.0f32, |t, l| t + ((a[l] + b[l]) + (c[l] + d[l])))
}

/// [`plane_moments`] in portable loops.
fn moments_body(p: &[f32]) -> (f32, f32) {
    let sum = chains_sum(p, |v| v);
    let mean = sum / p.len().max(1) as f32;
    (
        sum,
        chains_sum(p, |v| {
            let d = v - mean;
            d * d
        }),
    )
}

/// [`moments_body`] in explicit AVX2 vectors, bit for bit: the same lanes and order (a
/// subtract then a multiply then an add, no fused multiply-add). Compiled from loops with one
/// 8-lane accumulator, a convolution's per-plane moments were bound by that one add chain
/// (3 cycles per 8 floats on cache-resident planes).
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn moments_avx2(p: &[f32]) -> (f32, f32) {
    use std::arch::x86_64::*;
    // SAFETY: AVX2 is present (this function's contract).
    let sum = unsafe { chains_avx2(p, |v| v, |v| v) };
    let mean = sum / p.len().max(1) as f32;
    let vm = _mm256_set1_ps(mean);
    let sq_dev = |v| {
        let d = _mm256_sub_ps(v, vm);
        _mm256_mul_ps(d, d)
    };
    let sq_dev_scalar = |v: f32| {
        let d = v - mean;
        d * d
    };
    // SAFETY: as above.
    (sum, unsafe { chains_avx2(p, sq_dev, sq_dev_scalar) })
}

/// [`chains_sum`] in explicit AVX2 vectors: `f` on 8 lanes, `g` the same on one float.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn chains_avx2(
    p: &[f32],
    f: impl Fn(std::arch::x86_64::__m256) -> std::arch::x86_64::__m256,
    g: impl Fn(f32) -> f32,
) -> f32 {
    use std::arch::x86_64::*;
    let n = p.len();
    let (n32, n8) = (n / 32 * 32, n / 8 * 8);
    let mut v = [_mm256_setzero_ps(); 4];
    // SAFETY: every load lies below `n8 ≤ n`, within `p`.
    unsafe {
        for i in (0..n32).step_by(32) {
            for (k, v) in v.iter_mut().enumerate() {
                *v = _mm256_add_ps(*v, f(_mm256_loadu_ps(p.as_ptr().add(i + 8 * k))));
            }
        }
        for i in (n32..n8).step_by(8) {
            v[0] = _mm256_add_ps(v[0], f(_mm256_loadu_ps(p.as_ptr().add(i))));
        }
    }
    // `lanes_total`'s pairwise adds, on whole vectors.
    let pairs = _mm256_add_ps(_mm256_add_ps(v[0], v[1]), _mm256_add_ps(v[2], v[3]));
    let mut lanes = [0.0f32; 8];
    // SAFETY: `lanes` holds 8 floats.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), pairs) };
    let total = lanes.iter().fold(0.0f32, |t, x| t + x);
    // Fewer than 8 left: the portable loop puts them all in its scalar tail, so its sum is
    // exactly that tail's.
    total + chains_sum(&p[n8..], g)
}

/// `y = x·a + b` (with `relu`, `max(·, 0)`) over one plane.
fn apply_plane(y: &mut [MaybeUninit<f32>], x: &[f32], a: f32, b: f32, relu: bool) {
    simd_dispatch!(
        |y: &mut [MaybeUninit<f32>], x: &[f32], a: f32, b: f32, relu: bool| -> () {
            apply_plane_body(y, x, a, b, relu)
        }
    )
}

#[inline(always)]
fn apply_plane_body(y: &mut [MaybeUninit<f32>], x: &[f32], a: f32, b: f32, relu: bool) {
    let pairs = y.iter_mut().zip(x);
    if relu {
        for (d, s) in pairs {
            d.write(norm_relu(*s, a, b));
        }
    } else {
        for (d, s) in pairs {
            d.write(*s * a + b);
        }
    }
}

/// `y = max(x·a + b + r, 0)` over one plane: BatchNorm, residual add and ReLU in one pass.
fn apply_plane_add_relu(y: &mut [MaybeUninit<f32>], x: &[f32], r: &[f32], a: f32, b: f32) {
    simd_dispatch!(
        |y: &mut [MaybeUninit<f32>], x: &[f32], r: &[f32], a: f32, b: f32| -> () {
            for ((d, s), t) in y.iter_mut().zip(x).zip(r) {
                d.write((*s * a + b + *t).max(0.0));
            }
        }
    )
}

/// [`apply_plane`] over `x` itself.
fn apply_plane_in_place(x: &mut [f32], a: f32, b: f32, relu: bool) {
    simd_dispatch!(|x: &mut [f32], a: f32, b: f32, relu: bool| -> () {
        apply_plane_in_place_body(x, a, b, relu)
    })
}

#[inline(always)]
fn apply_plane_in_place_body(x: &mut [f32], a: f32, b: f32, relu: bool) {
    if relu {
        for v in x {
            *v = norm_relu(*v, a, b);
        }
    } else {
        for v in x {
            *v = *v * a + b;
        }
    }
}

/// [`apply_plane_add_relu`] over `x` itself.
fn apply_plane_add_relu_in_place(x: &mut [f32], r: &[f32], a: f32, b: f32) {
    simd_dispatch!(|x: &mut [f32], r: &[f32], a: f32, b: f32| -> () {
        for (v, t) in x.iter_mut().zip(r) {
            *v = (*v * a + b + *t).max(0.0);
        }
    })
}

/// ReLU's backward from its output over one plane, in place: `g` kept where `y > 0`, `+0.0`
/// elsewhere (the portable gate of [`gate_grad_sums`]).
#[inline(always)]
fn relu_grad_body(g: &mut [f32], y: &[f32]) {
    for (gv, yv) in g.iter_mut().zip(y) {
        *gv = relu_gate(*yv, *gv);
    }
}

/// [`plane_grad_sums`] with the gate chosen at run time, in explicit vectors where the CPU
/// has AVX2 ([`grad_sums_avx2`]).
fn grad_sums(x: &[f32], dy: &[f32], mu: f32, a: f32, b: f32, gated: bool) -> (f32, f32) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe {
            if gated {
                grad_sums_avx2::<true>(x, dy, mu, a, b)
            } else {
                grad_sums_avx2::<false>(x, dy, mu, a, b)
            }
        };
    }
    if gated {
        plane_grad_sums::<true>(x, dy, mu, a, b)
    } else {
        plane_grad_sums::<false>(x, dy, mu, a, b)
    }
}

/// [`plane_grad_sums`] in explicit 8-lane vectors, bit for bit: the same lanes (element `i`
/// in lane `i % 8`, the tail apart), the same operations in the same order (a multiply then
/// an add, no fused multiply-add; the gate as an ordered `> 0` compare and a mask). Compiled
/// from the portable loops, the staged gate and the sums read the map at 15 GB/s gated and 22
/// ungated, where a plain two-array reduction reads at 37 (25 MB maps, measured).
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn grad_sums_avx2<const GATED: bool>(
    x: &[f32],
    dy: &[f32],
    mu: f32,
    a: f32,
    b: f32,
) -> (f32, f32) {
    use std::arch::x86_64::*;
    let n = x.len().min(dy.len());
    let whole = n / 8 * 8;
    // SAFETY: every load lies below `whole ≤ n`, within both slices.
    let sums = unsafe {
        let (va, vb, zero) = (_mm256_set1_ps(a), _mm256_set1_ps(b), _mm256_setzero_ps());
        let mut sums = GradSumLanes::new(mu);
        for i in (0..whole).step_by(8) {
            let xv = _mm256_loadu_ps(x.as_ptr().add(i));
            let mut g = _mm256_loadu_ps(dy.as_ptr().add(i));
            if GATED {
                let pre = _mm256_add_ps(_mm256_mul_ps(xv, va), vb);
                g = _mm256_and_ps(g, _mm256_cmp_ps::<_CMP_GT_OQ>(pre, zero));
            }
            sums.add(g, xv);
        }
        sums
    };
    // Fewer than 8 left: the portable loop puts them all in its scalar tail, so its sums
    // are exactly that tail's.
    sums.total(plane_grad_sums::<GATED>(
        &x[whole..n],
        &dy[whole..n],
        mu,
        a,
        b,
    ))
}

/// The 8-lane running sums `(Σ g·(x − mu), Σ g)` of [`grad_sums_avx2`] and
/// [`gate_grad_sums_avx2`], in the lanes and order of [`plane_grad_sums`]'s.
#[cfg(target_arch = "x86_64")]
struct GradSumLanes {
    mu: std::arch::x86_64::__m256,
    gx: std::arch::x86_64::__m256,
    g: std::arch::x86_64::__m256,
}

#[cfg(target_arch = "x86_64")]
impl GradSumLanes {
    /// # Safety
    /// The CPU must have AVX.
    #[inline(always)]
    unsafe fn new(mu: f32) -> Self {
        use std::arch::x86_64::*;
        // SAFETY: the caller's CPU has AVX.
        unsafe {
            let zero = _mm256_setzero_ps();
            Self {
                mu: _mm256_set1_ps(mu),
                gx: zero,
                g: zero,
            }
        }
    }

    /// Adds 8 gradients `g` at inputs `x`: a multiply then an add, no fused multiply-add.
    ///
    /// # Safety
    /// The CPU must have AVX.
    #[inline(always)]
    unsafe fn add(&mut self, g: std::arch::x86_64::__m256, x: std::arch::x86_64::__m256) {
        use std::arch::x86_64::*;
        // SAFETY: the caller's CPU has AVX.
        unsafe {
            self.gx = _mm256_add_ps(self.gx, _mm256_mul_ps(g, _mm256_sub_ps(x, self.mu)));
            self.g = _mm256_add_ps(self.g, g);
        }
    }

    /// The lanes added in order, then the scalar tail's sums.
    fn total(&self, (tail_gx, tail_g): (f32, f32)) -> (f32, f32) {
        let lanes = |v: std::arch::x86_64::__m256| {
            // SAFETY: a plain reinterpretation of 8 f32 lanes.
            unsafe { std::mem::transmute::<std::arch::x86_64::__m256, [f32; 8]>(v) }
        };
        (
            lanes(self.gx).iter().sum::<f32>() + tail_gx,
            lanes(self.g).iter().sum::<f32>() + tail_g,
        )
    }
}

/// BatchNorm + add + ReLU's backward over one plane, its first pass: `g` (the output's
/// gradient) gated in place by the ReLU's output `y` (kept where `y > 0`, `+0.0`
/// elsewhere: the residual's gradient and BatchNorm's), and the gated values'
/// `(Σ g·(x − mu), Σ g)`. Bit for bit [`relu_grad_body`] then `plane_grad_sums::<false>`,
/// in one pass over `g` instead of two.
fn gate_grad_sums(g: &mut [f32], y: &[f32], x: &[f32], mu: f32) -> (f32, f32) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { gate_grad_sums_avx2(g, y, x, mu) };
    }
    gate_grad_sums_body(g, y, x, mu)
}

/// [`gate_grad_sums`] in portable loops: the gate, then the sums.
fn gate_grad_sums_body(g: &mut [f32], y: &[f32], x: &[f32], mu: f32) -> (f32, f32) {
    relu_grad_body(g, y);
    plane_grad_sums::<false>(x, g, mu, 0.0, 0.0)
}

/// [`gate_grad_sums`] in explicit 8-lane vectors: the gate as an ordered `y > 0` compare and
/// a mask (compiled from the plain loop it became a compare and branch per lane), and the
/// sums of [`grad_sums_avx2`] (same lanes, same operations in the same order).
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gate_grad_sums_avx2(g: &mut [f32], y: &[f32], x: &[f32], mu: f32) -> (f32, f32) {
    use std::arch::x86_64::*;
    let n = g.len().min(y.len()).min(x.len());
    let whole = n / 8 * 8;
    // SAFETY: every load and store lies below `whole ≤ n`, within the three slices.
    let sums = unsafe {
        let zero = _mm256_setzero_ps();
        let mut sums = GradSumLanes::new(mu);
        for i in (0..whole).step_by(8) {
            let open = _mm256_cmp_ps::<_CMP_GT_OQ>(_mm256_loadu_ps(y.as_ptr().add(i)), zero);
            let gv = _mm256_and_ps(_mm256_loadu_ps(g.as_ptr().add(i)), open);
            _mm256_storeu_ps(g.as_mut_ptr().add(i), gv);
            sums.add(gv, _mm256_loadu_ps(x.as_ptr().add(i)));
        }
        sums
    };
    // Fewer than 8 left: the portable loops put them all in their scalar tail.
    sums.total(gate_grad_sums_body(
        &mut g[whole..n],
        &y[whole..n],
        &x[whole..n],
        mu,
    ))
}

/// The per-plane constants of BatchNorm's input gradient (see [`bn_backward_in_place`]).
#[derive(Clone, Copy)]
struct DxPlane {
    /// `γ·inv_std / M`.
    k: f32,
    /// `M`, the values per channel.
    m: f32,
    mu: f32,
    inv_std: f32,
    dbeta: f32,
    dgamma: f32,
    /// The ReLU gate `x·a + b > 0`, for BatchNorm + ReLU.
    gate: Option<(f32, f32)>,
}

/// One value of [`dx_plane`]: `k·(M·g − dbeta − (x − mu)·inv_std·dgamma)`, `g` the `dy` at
/// `x`, gated with `GATED`. The one definition for the fresh and the in-place plane loops.
#[inline(always)]
fn dx_value<const GATED: bool>(xv: f32, dy: f32, c: &DxPlane, (a, b): (f32, f32)) -> f32 {
    let g = if GATED { relu_gate(xv * a + b, dy) } else { dy };
    c.k * (c.m * g - c.dbeta - (xv - c.mu) * c.inv_std * c.dgamma)
}

/// `dx = k·(M·g − dbeta − (x − mu)·inv_std·dgamma)` over one plane, `g` the (gated) `dy`.
fn dx_plane(dx: &mut [MaybeUninit<f32>], x: &[f32], dy: &[f32], c: DxPlane) {
    simd_dispatch!(
        |dx: &mut [MaybeUninit<f32>], x: &[f32], dy: &[f32], c: DxPlane| -> () {
            dx_plane_body(dx, x, dy, c)
        }
    )
}

#[inline(always)]
fn dx_plane_body(dx: &mut [MaybeUninit<f32>], x: &[f32], dy: &[f32], c: DxPlane) {
    let triples = dx.iter_mut().zip(x).zip(dy);
    match c.gate {
        Some(ab) => {
            for ((d, xv), g) in triples {
                d.write(dx_value::<true>(*xv, *g, &c, ab));
            }
        }
        None => {
            for ((d, xv), g) in triples {
                d.write(dx_value::<false>(*xv, *g, &c, (0.0, 0.0)));
            }
        }
    }
}

/// [`dx_plane`] writing `dx` over `dy` itself: no second map, and no read of fresh memory
/// before each store (a new buffer's lines are fetched before they are written: on a
/// 25 MB map that read cost a third of the pass, measured).
fn dx_plane_in_place(dy: &mut [f32], x: &[f32], c: DxPlane) {
    simd_dispatch!(|dy: &mut [f32], x: &[f32], c: DxPlane| -> () {
        dx_plane_in_place_body(dy, x, c)
    })
}

#[inline(always)]
fn dx_plane_in_place_body(dy: &mut [f32], x: &[f32], c: DxPlane) {
    let pairs = dy.iter_mut().zip(x);
    match c.gate {
        Some(ab) => {
            for (d, xv) in pairs {
                *d = dx_value::<true>(*xv, *d, &c, ab);
            }
        }
        None => {
            for (d, xv) in pairs {
                *d = dx_value::<false>(*xv, *d, &c, (0.0, 0.0));
            }
        }
    }
}

/// [`dx_plane`] writing `dx` over `x` itself (BatchNorm's input, which nothing needs after
/// its backward), `g` the gradient as it is (no gate): no new map, and no read of fresh
/// memory before each store.
fn dx_plane_over_x(x: &mut [f32], g: &[f32], c: DxPlane) {
    simd_dispatch!(|x: &mut [f32], g: &[f32], c: DxPlane| -> () { dx_plane_over_x_body(x, g, c) })
}

#[inline(always)]
fn dx_plane_over_x_body(x: &mut [f32], g: &[f32], c: DxPlane) {
    for (d, gv) in x.iter_mut().zip(g) {
        *d = dx_value::<false>(*d, *gv, &c, (0.0, 0.0));
    }
}

/// `f(sample, channel)` for every plane of an `[N, C, HW]` map, as an `[N][C]` table.
///
/// Computed a sample at a time, so each task streams through contiguous memory; walking one
/// channel across samples instead reads `HW`-float runs strided by `C·HW`, which the
/// prefetcher follows badly (perf: BatchNorm's reductions took 2-3x its elementwise passes).
fn per_plane<T: Copy + Default + Send>(
    n: usize,
    c: usize,
    f: impl Fn(usize, usize) -> T + Sync,
) -> Vec<T> {
    let mut table = vec![T::default(); n * c];
    table
        .par_chunks_mut(c.max(1))
        .enumerate()
        .for_each(|(i, row)| row.iter_mut().enumerate().for_each(|(ch, t)| *t = f(i, ch)));
    table
}

/// Per-channel sums over samples of an `[N][C]` table from [`per_plane`], in f64, in
/// sample order (so the result does not depend on how the planes were scheduled).
fn channel_sums<T: Copy>(table: &[T], c: usize, f: impl Fn(T) -> f64) -> Vec<f64> {
    let mut sums = vec![0.0f64; c];
    for row in table.chunks_exact(c.max(1)) {
        for (s, t) in sums.iter_mut().zip(row) {
            *s += f(*t);
        }
    }
    sums
}

/// One plane's `(Σ v, Σ (v − m)²)` around its own mean `m`: two passes over the plane,
/// the second from L1 (a 28x28 plane is 3 KiB), so the map is read from memory once.
pub(crate) fn plane_moments(p: &[f32]) -> (f32, f32) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { moments_avx2(p) };
    }
    moments_body(p)
}

/// Per-channel `(mean, biased var)` from the [`plane_moments`] of every plane of an
/// `[N, C, HW]` map (an `[N][C]` table), merged in f64 in sample order (Chan et al.'s
/// parallel variance): each plane's squares are around its own mean, so there is no
/// `E[x²] − mean²` cancellation, and the term `2(m̃ − mean)·Σ(v − m̃)` corrects for the
/// plane mean `m̃` having been rounded to f32.
pub(crate) fn channel_moments(table: &[(f32, f32)], c: usize, hw: usize) -> (Vec<f32>, Vec<f32>) {
    let n = table.len() / c.max(1);
    let (count, plane) = ((n * hw) as f64, hw as f64);
    let sums = channel_sums(table, c, |(s, _)| f64::from(s));
    let mean: Vec<f64> = sums.iter().map(|s| s / count).collect();
    let mut m2 = vec![0.0f64; c];
    for row in table.chunks_exact(c.max(1)) {
        for (ch, (s, sq)) in row.iter().enumerate() {
            let pm = f64::from(*s / hw.max(1) as f32);
            let d = pm - mean[ch];
            m2[ch] += f64::from(*sq) + 2.0 * d * (f64::from(*s) - plane * pm) + plane * d * d;
        }
    }
    (
        mean.iter().map(|m| *m as f32).collect(),
        m2.iter().map(|v| (v / count).max(0.0) as f32).collect(),
    )
}

/// Per-channel batch statistics of `x` viewed as `[N, C, HW]`: `(mean, biased var)` from
/// per-plane moments (see [`plane_moments`], [`channel_moments`]).
pub(crate) fn bn_stats(x: &[f32], n: usize, c: usize, hw: usize) -> (Vec<f32>, Vec<f32>) {
    let plane = |i: usize, ch: usize| &x[(i * c + ch) * hw..(i * c + ch + 1) * hw];
    channel_moments(&per_plane(n, c, |i, ch| plane_moments(plane(i, ch))), c, hw)
}

/// What follows the normalisation in [`bn_apply`], in the same pass over the map.
#[derive(Clone, Copy)]
pub(crate) enum Epilogue<'a> {
    /// `y` as it is.
    Nothing,
    /// `max(y, 0)`: BatchNorm + ReLU.
    Relu,
    /// `max(y + r, 0)` with `r` the same shape as `x`: a residual block's end (BatchNorm,
    /// the shortcut's add and the ReLU).
    AddRelu(&'a [f32]),
}

impl Epilogue<'_> {
    /// [`Epilogue::Relu`] when `relu`, else [`Epilogue::Nothing`].
    pub(crate) fn relu_if(relu: bool) -> Self {
        if relu {
            Epilogue::Relu
        } else {
            Epilogue::Nothing
        }
    }
}

/// `y = x · scale[c] + shift[c]` over `[N, C, HW]` followed by `then`, one sample per task
/// (the epilogue without a second sweep over the map).
pub(crate) fn bn_apply(
    x: &[f32],
    scale: &[f32],
    shift: &[f32],
    c: usize,
    hw: usize,
    then: Epilogue,
) -> Vec<f32> {
    if let Epilogue::AddRelu(r) = then {
        assert_eq!(
            x.len(),
            r.len(),
            "residual and BatchNorm input differ in size"
        );
    }
    let mut y = uninit(x.len());
    for_each_plane(&mut y, c, hw, |at, ch, y_p| {
        let (x_p, a, b) = (&x[at.clone()], scale[ch], shift[ch]);
        match then {
            Epilogue::Nothing => apply_plane(y_p, x_p, a, b, false),
            Epilogue::Relu => apply_plane(y_p, x_p, a, b, true),
            Epilogue::AddRelu(r) => apply_plane_add_relu(y_p, x_p, &r[at], a, b),
        }
    });
    // SAFETY: the chunks cover y (same length as x) and every element was written.
    unsafe { assume_init(y) }
}

/// [`bn_apply`] writing `y` over `x` itself (a map nothing needs once it is normalised: the
/// target network's, which keeps nothing for a backward): no new map, and no read of fresh
/// memory before each store. The same values, bit for bit.
pub(crate) fn bn_apply_in_place(
    x: &mut [f32],
    scale: &[f32],
    shift: &[f32],
    c: usize,
    hw: usize,
    then: Epilogue,
) {
    if let Epilogue::AddRelu(r) = then {
        assert_eq!(
            x.len(),
            r.len(),
            "residual and BatchNorm input differ in size"
        );
    }
    for_each_plane(x, c, hw, |at, ch, x_p| {
        let (a, b) = (scale[ch], shift[ch]);
        match then {
            Epilogue::Nothing => apply_plane_in_place(x_p, a, b, false),
            Epilogue::Relu => apply_plane_in_place(x_p, a, b, true),
            Epilogue::AddRelu(r) => apply_plane_add_relu_in_place(x_p, &r[at], a, b),
        }
    });
}

/// Calls `f(at, ch, plane)` for every `HW`-long plane of `out` (`[N, C, HW]`), one sample per
/// task: `at` is the plane's range, the same in any map of that shape, and `ch` its channel.
fn for_each_plane<T: Send>(
    out: &mut [T],
    c: usize,
    hw: usize,
    f: impl Fn(std::ops::Range<usize>, usize, &mut [T]) + Sync,
) {
    out.par_chunks_mut(c * hw)
        .enumerate()
        .for_each(|(n, out_n)| {
            for (ch, plane) in out_n.chunks_exact_mut(hw).enumerate() {
                let at = (n * c + ch) * hw;
                f(at..at + hw, ch, plane);
            }
        });
}

/// One plane's `(Σ g·(x − mu), Σ g)` in a single pass over `x` and `dy` (8 lanes per sum, so
/// it vectorises), where `g = dy`, or with `GATED` `dy` where `x·a + b > 0` and 0 elsewhere
/// (the backward of a fused ReLU). A const parameter, so the ungated loop has no select.
#[inline(always)]
fn plane_grad_sums<const GATED: bool>(
    x: &[f32],
    dy: &[f32],
    mu: f32,
    a: f32,
    b: f32,
) -> (f32, f32) {
    /// Gated values are staged per block in L1: with the gate inside the accumulating loop,
    /// LLVM compiled it to a test and branch per lane (perf: 6.5 % of a SimSiam step).
    const BLOCK: usize = 256;
    let (mut acc_gx, mut acc_g) = ([0.0f32; 8], [0.0f32; 8]);
    let (mut tail_gx, mut tail_g) = (0.0f32, 0.0f32);
    let mut staged = [0.0f32; BLOCK];
    for (xb, gb) in x.chunks(BLOCK).zip(dy.chunks(BLOCK)) {
        let g_block: &[f32] = if GATED {
            let staged = &mut staged[..xb.len()];
            for ((s, xv), gv) in staged.iter_mut().zip(xb).zip(gb) {
                *s = relu_gate(*xv * a + b, *gv);
            }
            staged
        } else {
            gb
        };
        let (cx, cg) = (xb.chunks_exact(8), g_block.chunks_exact(8));
        let (rx, rg) = (cx.remainder(), cg.remainder());
        for (xs, gs) in cx.zip(cg) {
            for l in 0..8 {
                acc_gx[l] += gs[l] * (xs[l] - mu);
                acc_g[l] += gs[l];
            }
        }
        // Only the last block can have a remainder (BLOCK is a multiple of 8), so element
        // i still lands in lane i % 8 or in the tail, as without blocks.
        for (xv, gv) in rx.iter().zip(rg) {
            tail_gx += *gv * (*xv - mu);
            tail_g += *gv;
        }
    }
    (
        acc_gx.iter().sum::<f32>() + tail_gx,
        acc_g.iter().sum::<f32>() + tail_g,
    )
}

/// BatchNorm's backward constants and the ReLU gate it may open with: what every plane of
/// [`bn_backward_in_place`] needs besides its own values.
#[derive(Clone, Copy)]
pub(crate) struct BnGrad<'a> {
    /// Batch mean per channel.
    pub mean: &'a [f32],
    /// `1/sqrt(var + eps)` per channel.
    pub inv_std: &'a [f32],
    /// `γ` per channel (1 without affine parameters).
    pub gamma: Option<&'a [f32]>,
    /// For BatchNorm followed by ReLU: the forward's per-channel `(scale, shift)`; `dy` is
    /// zeroed where the pre-activation `x·scale + shift` was not positive, recomputed from
    /// the saved input instead of storing a mask.
    pub relu: Option<(&'a [f32], &'a [f32])>,
    /// Channels.
    pub c: usize,
    /// Values per plane.
    pub hw: usize,
}

impl BnGrad<'_> {
    /// The ReLU gate of channel `ch` (always open without ReLU).
    fn gate(&self, ch: usize) -> (f32, f32, bool) {
        match self.relu {
            Some((scale, shift)) => (scale[ch], shift[ch], true),
            None => (0.0, 0.0, false),
        }
    }

    fn plane_sums(&self, x_n: &[f32], dy_n: &[f32], ch: usize) -> (f32, f32) {
        let (a, b, gated) = self.gate(ch);
        let r = ch * self.hw..(ch + 1) * self.hw;
        let (g_xhat, g) = grad_sums(&x_n[r.clone()], &dy_n[r], self.mean[ch], a, b, gated);
        (g_xhat * self.inv_std[ch], g)
    }

    /// `(dgamma, dbeta)`: every plane's `(Σ g·x̂, Σ g)` (a sample per task), added per
    /// channel in f64 in sample order.
    fn param_grads(&self, x: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let len = self.c * self.hw;
        let table = per_plane(x.len() / len.max(1), self.c, |i, ch| {
            self.plane_sums(&x[i * len..(i + 1) * len], &dy[i * len..(i + 1) * len], ch)
        });
        self.param_totals(&table)
    }

    /// `(dgamma, dbeta)` from an `[N][C]` table of every plane's `(Σ g·x̂, Σ g)`, added per
    /// channel in f64 in sample order.
    fn param_totals(&self, table: &[(f32, f32)]) -> (Vec<f32>, Vec<f32>) {
        let f32s = |v: Vec<f64>| v.into_iter().map(|s| s as f32).collect();
        (
            f32s(channel_sums(table, self.c, |(g_xhat, _)| g_xhat as f64)),
            f32s(channel_sums(table, self.c, |(_, g)| g as f64)),
        )
    }

    /// `(dgamma, dbeta)` and every channel's [`DxPlane`] for the map `x` and its `dy`.
    fn constants(&self, x: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<DxPlane>) {
        let (dgamma, dbeta) = self.param_grads(x, dy);
        let planes = self.dx_planes(&dgamma, &dbeta, x.len());
        (dgamma, dbeta, planes)
    }

    /// `(dgamma, dbeta)` as [`Self::param_grads`] with `g` (the output's gradient) first
    /// gated in place by the ReLU that follows the residual add, whose output is `y`: the
    /// gate and the sums in one pass ([`gate_grad_sums`]), a sample per task.
    fn gated_param_grads(&self, x: &[f32], g: &mut [f32], y: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let len = self.c * self.hw;
        assert!(
            x.len() == g.len() && y.len() == g.len(),
            "BatchNorm input, output and gradient differ in size"
        );
        let mut table = vec![(0.0f32, 0.0f32); x.len() / len.max(1) * self.c];
        table
            .par_chunks_mut(self.c.max(1))
            .zip(g.par_chunks_mut(len.max(1)))
            .enumerate()
            .for_each(|(i, (row, g_n))| {
                for (ch, t) in row.iter_mut().enumerate() {
                    let r = ch * self.hw..(ch + 1) * self.hw;
                    let at = i * len + r.start..i * len + r.end;
                    let (g_x, g_sum) =
                        gate_grad_sums(&mut g_n[r], &y[at.clone()], &x[at], self.mean[ch]);
                    *t = (g_x * self.inv_std[ch], g_sum);
                }
            });
        self.param_totals(&table)
    }

    /// Every channel's [`DxPlane`] of a map of `len` values.
    fn dx_planes(&self, dgamma: &[f32], dbeta: &[f32], len: usize) -> Vec<DxPlane> {
        let m = (len / self.c.max(1)) as f32;
        (0..self.c)
            .map(|ch| {
                let is = self.inv_std[ch];
                let (a, b, gated) = self.gate(ch);
                DxPlane {
                    k: self.gamma.map_or(1.0, |g| g[ch]) * is / m,
                    m,
                    mu: self.mean[ch],
                    inv_std: is,
                    dbeta: dbeta[ch],
                    dgamma: dgamma[ch],
                    gate: gated.then_some((a, b)),
                }
            })
            .collect()
    }
}

/// Where BatchNorm + add + ReLU's backward writes `dx`.
pub(crate) enum DxInto<'a> {
    /// Over the saved input `x` itself, when nothing else holds it.
    X(&'a mut [f32]),
    /// Into a new map, reading `x` as it is.
    New(&'a [f32]),
}

/// Backward of `y = max(BN(x) + r, 0)` over `[N, C, HW]` (`bn` without a ReLU of its own):
/// `g` (the gradient of `y`) becomes, in place, the gated gradient `g·[y > 0]`, which is
/// the residual's; BatchNorm's backward takes it from there. Returns `(dx, dgamma, dbeta)`,
/// `dx` empty when it was written over `x`.
///
/// Passes over the map: the gate with the sums (read `y`, `g`, `x`, write `g`), then `dx`
/// (read `x` and `g`, write `dx`): 7 with `dx` over `x`, where a separate gate pass and a
/// new `dx` map took 8, and a read of the new map's lines before each store.
pub(crate) fn bn_add_relu_backward(
    x: DxInto,
    g: &mut [f32],
    y: &[f32],
    bn: BnGrad,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert!(bn.relu.is_none(), "the ReLU follows the add, not BatchNorm");
    let (c, hw) = (bn.c, bn.hw);
    let x_in: &[f32] = match &x {
        DxInto::X(x) => x,
        DxInto::New(x) => x,
    };
    let (dgamma, dbeta) = bn.gated_param_grads(x_in, g, y);
    let planes = bn.dx_planes(&dgamma, &dbeta, g.len());
    let g: &[f32] = g;
    let dx = match x {
        DxInto::X(x) => {
            for_each_plane(x, c, hw, |at, ch, x_p| {
                dx_plane_over_x(x_p, &g[at], planes[ch])
            });
            Vec::new()
        }
        DxInto::New(x) => {
            let mut dx = uninit(x.len());
            for_each_plane(&mut dx, c, hw, |at, ch, dx_p| {
                dx_plane(dx_p, &x[at.clone()], &g[at], planes[ch])
            });
            // SAFETY: the chunks cover dx (same length as x) and every element was written.
            unsafe { assume_init(dx) }
        }
    };
    (dx, dgamma, dbeta)
}

/// BatchNorm backward over `[N, C, HW]` given the saved input and the constants in `bn`,
/// with `dx` written over `dy`: `dbeta = Σ g`, `dgamma = Σ g·x̂`,
/// `dx = γ·inv_std/M · (M·g − dbeta − x̂·dgamma)`, `g` the (gated) `dy`. Returns
/// `(dgamma, dbeta)`.
pub(crate) fn bn_backward_in_place(x: &[f32], dy: &mut [f32], bn: BnGrad) -> (Vec<f32>, Vec<f32>) {
    assert_eq!(
        x.len(),
        dy.len(),
        "BatchNorm input and gradient differ in size"
    );
    let (dgamma, dbeta, planes) = bn.constants(x, dy);
    let (c, hw) = (bn.c, bn.hw);
    for_each_plane(dy, c, hw, |at, ch, dy_p| {
        dx_plane_in_place(dy_p, &x[at], planes[ch])
    });
    (dgamma, dbeta)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plane loops give bit-identical results through the AVX2 copy (taken on a CPU that
    /// has it) and the baseline build (this test's own calls of the bodies).
    #[test]
    fn batch_norm_plane_loops_do_not_depend_on_the_cpu() {
        let len = 8 * 97 + 5; // a tail after the 8-lane chunks
        let x: Vec<f32> = (0..len)
            .map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0)
            .collect();
        let dy: Vec<f32> = (0..len)
            .map(|i| ((i * 104729) % 997) as f32 / 300.0 - 1.5)
            .collect();
        for len in [len, 49, 196, 33, 7, 0] {
            assert_eq!(plane_moments(&x[..len]), moments_body(&x[..len]), "{len}");
        }
        for gated in [false, true] {
            let want = if gated {
                plane_grad_sums::<true>(&x, &dy, 0.1, 1.3, -0.2)
            } else {
                plane_grad_sums::<false>(&x, &dy, 0.1, 1.3, -0.2)
            };
            assert_eq!(grad_sums(&x, &dy, 0.1, 1.3, -0.2, gated), want);
            let (mut a, mut b) = (uninit(len), uninit(len));
            apply_plane(&mut a, &x, 1.3, -0.2, gated);
            apply_plane_body(&mut b, &x, 1.3, -0.2, gated);
            // SAFETY: both planes were written in full.
            assert_eq!(unsafe { assume_init(a) }, unsafe { assume_init(b) });
            let c = DxPlane {
                k: 0.01,
                m: 256.0,
                mu: 0.1,
                inv_std: 1.7,
                dbeta: 3.0,
                dgamma: -2.0,
                gate: gated.then_some((1.3, -0.2)),
            };
            let (mut a, mut b) = (uninit(len), uninit(len));
            dx_plane(&mut a, &x, &dy, c);
            dx_plane_body(&mut b, &x, &dy, c);
            // SAFETY: both planes were written in full.
            let fresh = unsafe { assume_init(a) };
            assert_eq!(fresh, unsafe { assume_init(b) });
            // In place, through the dispatch and the baseline body, the same values.
            let (mut a, mut b) = (dy.clone(), dy.clone());
            dx_plane_in_place(&mut a, &x, c);
            dx_plane_in_place_body(&mut b, &x, c);
            assert_eq!(a, fresh);
            assert_eq!(b, fresh);
            // Over x, ungated: the fresh plane's values (with the gate applied beforehand).
            if !gated {
                let (mut a, mut b) = (x.clone(), x.clone());
                dx_plane_over_x(&mut a, &dy, c);
                dx_plane_over_x_body(&mut b, &dy, c);
                assert_eq!(a, fresh);
                assert_eq!(b, fresh);
            }
        }
        // The gate with the sums, through the dispatch and the portable body: the gated
        // gradient and sums of the gate pass followed by the ungated sums.
        let y: Vec<f32> = x.iter().map(|v| v - 0.3).collect();
        for len in [len, 49, 196, 7, 0] {
            let (mut a, mut b, mut want) =
                (dy[..len].to_vec(), dy[..len].to_vec(), dy[..len].to_vec());
            relu_grad_body(&mut want, &y[..len]);
            let sums = plane_grad_sums::<false>(&x[..len], &want, 0.1, 0.0, 0.0);
            assert_eq!(
                gate_grad_sums(&mut a, &y[..len], &x[..len], 0.1),
                sums,
                "{len}"
            );
            assert_eq!(
                gate_grad_sums_body(&mut b, &y[..len], &x[..len], 0.1),
                sums,
                "{len}"
            );
            assert_eq!((&a, &b), (&want, &want), "{len}");
            assert!(
                len == 0 || (want.contains(&0.0) && want != dy[..len]),
                "gated: {len}"
            );
        }
    }

    /// Every index reaches `work` exactly once, in contiguous ranges, whatever `n` is against
    /// the number of ranges, and every range's accumulator is in the sum.
    #[test]
    fn sum_over_ranges_visits_every_index_once() {
        for n in [0, 1, 2, 3, 5, 17, 100] {
            let (count, total) = sum_over_ranges(
                n,
                || (vec![0u32; n], 0u64),
                |(seen, total), range| {
                    for i in range {
                        seen[i] += 1;
                        *total += i as u64;
                    }
                },
                |(mut a, ta), (b, tb)| {
                    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                    (a, ta + tb)
                },
            );
            assert!(count.iter().all(|c| *c == 1), "n = {n}: {count:?}");
            assert_eq!(
                total,
                (n as u64) * (n as u64).saturating_sub(1) / 2,
                "n = {n}"
            );
        }
    }

    /// BatchNorm's normalisation gives the same bits into a new map and over its input,
    /// with each epilogue.
    #[test]
    fn bn_apply_in_place_matches_a_new_map() {
        let (n, c, hw) = (2, 3, 53);
        let x: Vec<f32> = (0..n * c * hw)
            .map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0)
            .collect();
        let r: Vec<f32> = (0..n * c * hw)
            .map(|i| ((i * 31) % 17) as f32 / 8.0 - 1.0)
            .collect();
        let (scale, shift) = ([1.5, -0.5, 0.25], [0.1, 0.3, -0.2]);
        for then in [Epilogue::Nothing, Epilogue::Relu, Epilogue::AddRelu(&r)] {
            let want = bn_apply(&x, &scale, &shift, c, hw, then);
            let mut got = x.clone();
            bn_apply_in_place(&mut got, &scale, &shift, c, hw, then);
            assert_eq!(got, want);
            assert_ne!(got, x);
        }
        let (mut a, mut b) = (x.clone(), x.clone());
        apply_plane_in_place(&mut a, 1.3, -0.2, true);
        apply_plane_in_place_body(&mut b, 1.3, -0.2, true);
        assert_eq!(a, b);
        assert!(a.contains(&0.0));
    }

    /// BatchNorm + add + ReLU's backward gives the same bits with `dx` over `x` and in a new
    /// map, and those of its two steps done apart: the ReLU gate, then BatchNorm's backward.
    #[test]
    fn add_relu_backward_writes_dx_over_x_or_anew_alike() {
        let (n, c, hw) = (3, 4, 49);
        let len = n * c * hw;
        let x: Vec<f32> = (0..len)
            .map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0)
            .collect();
        let y: Vec<f32> = (0..len).map(|i| ((i * 31) % 17) as f32 - 8.0).collect();
        let dy: Vec<f32> = (0..len)
            .map(|i| ((i * 104729) % 997) as f32 / 300.0 - 1.5)
            .collect();
        let (mean, var) = bn_stats(&x, n, c, hw);
        let inv: Vec<f32> = var.iter().map(|v| 1.0 / (v + 1e-5).sqrt()).collect();
        let gamma = [0.5, 1.5, -1.0, 2.0];
        let bn = BnGrad {
            mean: &mean,
            inv_std: &inv,
            gamma: Some(&gamma),
            relu: None,
            c,
            hw,
        };

        let mut want_g = dy.clone();
        relu_grad_body(&mut want_g, &y);
        let mut want_dx = want_g.clone();
        let (want_dg, want_db) = bn_backward_in_place(&x, &mut want_dx, bn);
        assert!(want_dx.iter().all(|v| v.is_finite()) && want_g != dy);

        let (mut g, mut over) = (dy.clone(), x.clone());
        let (none, dg, db) = bn_add_relu_backward(DxInto::X(&mut over), &mut g, &y, bn);
        assert!(none.is_empty(), "dx went over x");
        assert_eq!(
            (&over, &g, &dg, &db),
            (&want_dx, &want_g, &want_dg, &want_db)
        );

        let mut g = dy.clone();
        let (dx, dg, db) = bn_add_relu_backward(DxInto::New(&x), &mut g, &y, bn);
        assert_eq!((&dx, &g, &dg, &db), (&want_dx, &want_g, &want_dg, &want_db));
    }

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
                                    out[(n * k + r) * p + oh * g.wo + ow] =
                                        x[((n * g.c + c) * g.h + ih as usize) * g.w + iw as usize];
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
            // Same-size stride 1 (the contiguous-copy path), including kernels wider than
            // the image and a 1x1 image.
            ([1, 2, 6, 4], [5, 5], [1, 1], [2, 2]),
            ([2, 2, 3, 8], [3, 5], [1, 1], [1, 2]),
            ([1, 3, 1, 1], [3, 3], [1, 1], [1, 1]),
            ([1, 1, 2, 9], [7, 3], [1, 1], [3, 1]),
        ] {
            let g = ConvGeom::new(shape, ksz, s, pad);
            let x: Vec<f32> = (0..shape.iter().product::<usize>())
                .map(|i| ((i * 37) % 11) as f32 - 5.0)
                .collect();
            let (k, p, xl) = (g.k(), g.p(), shape[1] * shape[2] * shape[3]);
            let mut cols = vec![f32::NAN; g.n * k * p];
            for n in 0..g.n {
                im2col_sample(
                    &x[n * xl..(n + 1) * xl],
                    &g,
                    &mut cols[n * k * p..(n + 1) * k * p],
                );
            }
            assert_eq!(cols, im2col_naive(&x, &g), "{g:?}");
            // <im2col(x), y> == <x, col2im(y)>
            let y: Vec<f32> = (0..cols.len())
                .map(|i| ((i * 13) % 7) as f32 - 3.0)
                .collect();
            let lhs: f64 = cols.iter().zip(&y).map(|(a, b)| (*a * *b) as f64).sum();
            let mut back = vec![0.0; x.len()];
            for n in 0..g.n {
                col2im_sample(
                    &y[n * k * p..(n + 1) * k * p],
                    &g,
                    &mut back[n * xl..(n + 1) * xl],
                );
            }
            let rhs: f64 = x.iter().zip(&back).map(|(a, b)| (*a * *b) as f64).sum();
            assert!((lhs - rhs).abs() < 1e-6 * lhs.abs().max(1.0), "{g:?}");
        }
    }
}
