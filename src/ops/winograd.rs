//! 3x3 stride-1 "same" convolutions as Winograd F(2x2, 3x3) on x86-64 with AVX2 + FMA:
//! each 2x2 block of outputs from a 4x4 block of the input in 16 products per channel pair
//! instead of 36.
//!
//! Why: on the 28 px trunk the 3x3 stride-1 convolutions' forward and input gradient are
//! half of a training step, and their register tiles already run at the core's FMA peak, so
//! only fewer multiplications make them faster. With `V = Bᵀ d B` (input tile `d`),
//! `U = G w Gᵀ` (kernel `w`) and `Y = Aᵀ M A`, the products `M[ξ] = Σ_c U[ξ][o][c] · V[ξ][c]`
//! are 16 independent GEMMs (one per tile element `ξ`), run on [`super::implicit_gemm`]'s
//! 6x16 register tile with the input channels as the sum.
//!
//! Per sample: the input is copied into its stride-2 phase planes (the same fill as the
//! stride-2 convolutions, with BatchNorm + ReLU applied on the way), so every input tile's
//! 16 values are vector loads along a row of tiles; then `V`, the 16 GEMMs into `M` and
//! `Y = Aᵀ M A` written into the NCHW output (`V` and `M` take 800 KB for a 32-channel
//! 28x28 sample, about one core's L2 here).
//!
//! The input gradient of a 3x3 stride-1 "same" convolution is itself one (of `dy`, with the
//! kernel transposed and turned by 180°), so it runs here too. F(2x2, 3x3) rounds like a
//! direct sum of a few more terms (its transforms only add, subtract and halve): the tests
//! hold it to 1e-4 of the im2col path, as every fast path. The weight gradient stays on the
//! implicit GEMM.

use super::implicit_gemm::{NR, Prefetch, TapGemm, as_lines, available, pack_weight};
use super::kernels::{ConvGeom, ConvOutput, NormRelu, conv_output, with_scratch};
use super::phase_planes::PhaseLayout;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Elements of one transformed tile (4x4).
const XI: usize = 16;

/// Whether a convolution can run here: a 3x3 kernel at stride 1 with padding 1 (output the
/// size of the input), on a CPU with the implicit GEMM, with at least 16 input channels (the
/// GEMMs' sum) and 16 output channels (their lanes).
pub(crate) fn applies(co: usize, g: &ConvGeom) -> bool {
    available()
        && (g.kh, g.kw, g.sh, g.sw, g.ph, g.pw) == (3, 3, 1, 1, 1, 1)
        && (g.ho, g.wo) == (g.h, g.w)
        && g.c >= NR
        && co >= NR
        && g.h >= 2
        && g.w >= 2
}

/// Whether the input gradient can run here: the same convolution seen from `dy` (input and
/// output channels swapped).
pub(crate) fn applies_input_grad(co: usize, g: &ConvGeom) -> bool {
    applies(g.c, &transposed(co, g))
}

/// Whether the forward runs here rather than on the implicit GEMM: it [`applies`],
/// [`crate::runtime::winograd`] is on and the map is one where it was measured faster
/// ([`map_pays_off`]).
pub(crate) fn pays_off(co: usize, g: &ConvGeom) -> bool {
    crate::runtime::winograd() && applies(co, g) && map_pays_off(g.c.min(co), g)
}

/// [`pays_off`] for the input gradient.
pub(crate) fn pays_off_input_grad(co: usize, g: &ConvGeom) -> bool {
    crate::runtime::winograd() && applies_input_grad(co, g) && map_pays_off(g.c.min(co), g)
}

/// Maps of 12x12 and more, and even-sided maps of 8x8 and more with at least 128 channels
/// on both sides (`channels`, the smaller count). Measured at batch 64-128, the two paths
/// called alternately in one process, forward and input gradient alike (median pair
/// ratios): 28x28 / 32 channels 1.25-1.31x, 32x32 / 64 1.33x, 16x16 / 128 1.55-1.59x,
/// 14x14 / 64 1.36-1.46x, 13x13 and 12x12 / 64 1.30-1.31x; 11x11 / 64 1.17-1.21x, 10x10
/// 1.09x, 9x9 1.04-1.05x (not taken: small gains); 8x8 / 256 1.33-1.47x, 8x8 / 128
/// 1.10-1.19x, but 8x8 / 64 0.80-1.05x; 7x7 / 128 0.88-1.11x, 7x7 / 256 0.98-1.07x, 6x6 / 128
/// 1.01-1.14x, 4x4 / 512 0.66-0.82x (a 4-tile row half-fills a vector and a 7x7 map computes
/// 64 outputs for 49).
fn map_pays_off(channels: usize, g: &ConvGeom) -> bool {
    let large = g.h >= 12 && g.w >= 12;
    let even = g.h.is_multiple_of(2) && g.w.is_multiple_of(2);
    large || (even && g.h >= 8 && g.w >= 8 && channels >= 128)
}

/// The geometry of the convolution that gives the input gradient: over `dy`
/// `[N, CO, HO, WO]`, the same kernel size, stride and padding.
fn transposed(co: usize, g: &ConvGeom) -> ConvGeom {
    ConvGeom::new(
        [g.n, co, g.ho, g.wo],
        [g.kh, g.kw],
        [g.sh, g.sw],
        [g.ph, g.pw],
    )
}

/// The tiles of one output plane: `th x tw` blocks of 2x2 outputs.
struct Tiles {
    th: usize,
    tw: usize,
}

impl Tiles {
    fn new(g: &ConvGeom) -> Self {
        Self {
            th: g.ho.div_ceil(2),
            tw: g.wo.div_ceil(2),
        }
    }

    fn count(&self) -> usize {
        self.th * self.tw
    }
}

/// `U = G w Gᵀ` of every kernel `w[o][c]` (`[CO, C, 3, 3]`), packed for the tile as one
/// `[CO/16][C][16]` block list per tile element `ξ`.
fn transform_weight(w: &[f32], co: usize, c: usize) -> Vec<Vec<f32>> {
    const G: [[f32; 3]; 4] = [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ];
    let mut u = vec![vec![0.0f32; co * c]; XI];
    for (oc, k) in w.chunks_exact(9).enumerate() {
        // G·w (4x3), then (G·w)·Gᵀ (4x4).
        let gw: [[f32; 3]; 4] = std::array::from_fn(|i| {
            std::array::from_fn(|b| (0..3).map(|a| G[i][a] * k[a * 3 + b]).sum())
        });
        for i in 0..4 {
            for j in 0..4 {
                u[i * 4 + j][oc] = (0..3).map(|b| gw[i][b] * G[j][b]).sum();
            }
        }
    }
    u.iter().map(|u| pack_weight(u, co, c)).collect()
}

/// The kernel of the input-gradient convolution: `w'[c][o][i][j] = w[o][c][2−i][2−j]`.
fn input_grad_kernel(w: &[f32], co: usize, c: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; w.len()];
    for o in 0..co {
        for ci in 0..c {
            let src = &w[(o * c + ci) * 9..][..9];
            let dst = &mut t[(ci * co + o) * 9..][..9];
            for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                *d = *s;
            }
        }
    }
    t
}

/// Forward `y = conv(x, w)` of a convolution [`applies`] to (`x` `[N, C, H, W]`, `w`
/// `[CO, C, 3, 3]`): returns `[N, CO, H·W]` and, with `moments`, each output plane's
/// moments, as [`super::implicit_gemm::conv_forward`].
pub(crate) fn conv_forward(
    x: &[f32],
    w: &[f32],
    co: usize,
    g: &ConvGeom,
    norm: Option<NormRelu>,
    moments: bool,
) -> ConvOutput {
    assert!(applies(co, g), "not a Winograd convolution: {g:?}");
    assert_eq!(w.len(), co * g.k(), "conv weight is not [CO, C, 3, 3]");
    let x_len = g.c * g.h * g.w;
    assert_eq!(x.len(), g.n * x_len, "conv input is not [N, C, H, W]");
    let plan = Plan::new(w, co, g);
    conv_output(g.n, co, g.p(), moments, |n, y_n| {
        let next = x.get((n + 1) * x_len..(n + 2) * x_len).unwrap_or(&[]);
        plan.run(&x[n * x_len..(n + 1) * x_len], norm, next, Out::Store(y_n));
    })
}

/// Input gradient `dx` of a convolution [`applies_input_grad`] to, added into `acc`
/// (`[N, C, H, W]`) when given, else returned.
pub(crate) fn conv_backward_x(
    dy: &[f32],
    w: &[f32],
    co: usize,
    g: &ConvGeom,
    acc: Option<&mut [f32]>,
) -> Option<Vec<f32>> {
    assert!(
        applies_input_grad(co, g),
        "not a Winograd input gradient: {g:?}"
    );
    assert_eq!(w.len(), co * g.k(), "conv weight is not [CO, C, 3, 3]");
    let gt = transposed(co, g);
    let dy_len = co * g.p();
    assert_eq!(
        dy.len(),
        g.n * dy_len,
        "conv output gradient is not [N, CO, HO, WO]"
    );
    let plan = Plan::new(&input_grad_kernel(w, co, g.c), g.c, &gt);
    let x_len = g.c * g.h * g.w;
    let sample = |n: usize, out: Out| {
        let next = dy.get((n + 1) * dy_len..(n + 2) * dy_len).unwrap_or(&[]);
        plan.run(&dy[n * dy_len..(n + 1) * dy_len], None, next, out);
    };
    match acc {
        Some(acc) => {
            assert_eq!(acc.len(), g.n * x_len, "input gradient accumulator size");
            acc.par_chunks_mut(x_len.max(1))
                .enumerate()
                .for_each(|(n, acc_n)| sample(n, Out::Add(acc_n)));
            None
        }
        None => Some(
            conv_output(g.n, g.c, g.h * g.w, false, |n, dx_n| {
                sample(n, Out::Store(dx_n))
            })
            .0,
        ),
    }
}

/// Where a sample's output goes.
enum Out<'a> {
    /// Written (every element).
    Store(&'a mut [MaybeUninit<f32>]),
    /// Added to what is there.
    Add(&'a mut [f32]),
}

/// One convolution's transformed weights and layouts, built once per call and run once per
/// sample.
struct Plan {
    g: ConvGeom,
    co: usize,
    tiles: Tiles,
    /// Stride-2 phase planes of the padded input: plane `(a, b)` of channel `c` holds
    /// `xpad[2u + a, 2v + b]`, so input tile `(u, v)` is rows `u, u + 1` and columns
    /// `v, v + 1` of the four planes.
    layout: PhaseLayout,
    /// The stride-2 convolution geometry `layout` and its fill are built from.
    phases: ConvGeom,
    /// `U[ξ]` packed per [`transform_weight`].
    packed: Vec<Vec<f32>>,
    /// GEMM sum offsets: channel `c` of `V[ξ]` starts at `c·T`.
    channel_offsets: Vec<u32>,
    /// GEMM positions: tile `t` at `t`.
    tile_bases: Vec<u32>,
}

impl Plan {
    fn new(w: &[f32], co: usize, g: &ConvGeom) -> Self {
        let tiles = Tiles::new(g);
        let t = tiles.count();
        let phases = ConvGeom::new([g.n, g.c, g.h, g.w], [3, 3], [2, 2], [1, 1]);
        let layout = PhaseLayout::new(&phases);
        // Tile row u reads plane rows u and u + 1, columns up to tw: inside the planes (the
        // fill zeroes what lies past the image).
        assert!(
            layout.hp > tiles.th && layout.wp > tiles.tw,
            "phase planes too small"
        );
        assert!(
            u32::try_from(g.c * t).is_ok(),
            "conv sample too large for 32-bit offsets"
        );
        Self {
            g: *g,
            co,
            packed: transform_weight(w, co, g.c),
            channel_offsets: (0..g.c).map(|c| (c * t) as u32).collect(),
            tile_bases: (0..t as u32).collect(),
            tiles,
            layout,
            phases,
        }
    }

    /// One sample `x_n` (`[C, H, W]`) into `out` (`[CO, H, W]`); `next` is prefetched.
    fn run(&self, x_n: &[f32], norm: Option<NormRelu>, next: &[f32], out: Out) {
        let (c, co, t) = (self.g.c, self.co, self.tiles.count());
        let planes_len = self.layout.len(c);
        with_scratch(planes_len + XI * (c + co) * t, |buf| {
            let (planes, rest) = buf.split_at_mut(planes_len);
            let (v, m) = rest.split_at_mut(XI * c * t);
            self.layout.fill(x_n, &self.phases, planes, norm);
            input_transform(planes, &self.layout, c, &self.tiles, v);
            // SAFETY: MaybeUninit<f32> has f32's layout; only initialised values are
            // written through the view.
            let m_out = unsafe { &mut *(m as *mut [f32] as *mut [MaybeUninit<f32>]) };
            // While the GEMMs run, each asks for its sixteenth of the next sample's input and
            // of this sample's output, which the output transform writes in a burst (it
            // missed the caches there: 1.04-1.06x faster with these requests at 28 px).
            let y: &[MaybeUninit<f32>] = match &out {
                Out::Store(y) => y,
                Out::Add(y) => as_lines(y),
            };
            for (xi, (v_xi, m_xi)) in v
                .chunks_exact(c * t)
                .zip(m_out.chunks_exact_mut(co * t))
                .enumerate()
            {
                let prefetch = Prefetch::of([sixteenth(as_lines(next), xi), sixteenth(y, xi), &[]]);
                TapGemm::new(
                    &self.packed[xi],
                    &self.channel_offsets,
                    &self.tile_bases,
                    co,
                )
                .store_channels(v_xi, m_xi, t, prefetch);
            }
            output_transform(m, co, &self.tiles, &self.g, out);
        });
    }
}

/// Share `xi` of `part` cut in 16 (empty past its end).
fn sixteenth(part: &[MaybeUninit<f32>], xi: usize) -> &[MaybeUninit<f32>] {
    let share = part.len().div_ceil(XI);
    part.get(xi * share..((xi + 1) * share).min(part.len()))
        .unwrap_or(&[])
}

/// `V[ξ][c][t] = (Bᵀ d B)[ξ]` for every channel `c` and input tile `t = u·tw + v`, with
/// `Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]]`.
fn input_transform(planes: &[f32], layout: &PhaseLayout, c: usize, tiles: &Tiles, v: &mut [f32]) {
    let (plane, t) = (layout.hp * layout.wp, tiles.count());
    assert!(planes.len() >= c * 4 * plane, "phase planes size");
    assert!(v.len() >= XI * c * t, "Winograd input tiles size");
    assert!(
        layout.hp > tiles.th && layout.wp > tiles.tw,
        "tiles outside the planes"
    );
    assert!(available(), "Winograd convolutions need AVX2 and FMA");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX2 is present; tile (u, v) reads rows u, u + 1 < hp and columns v, v + 1 ≤ tw
    // < wp of its channel's four planes, and writes V[ξ][c][u·tw + v] (asserted above).
    unsafe {
        input_transform_avx2(planes.as_ptr(), plane, layout.wp, c, tiles, v.as_mut_ptr())
    };
}

/// [`input_transform`], 8 tiles of a tile row at a time (masked for the row's last ones).
///
/// # Safety
/// The CPU has AVX2; `planes` holds `c` channels of four `plane`-float planes with rows of
/// `wp > tiles.tw` floats and more than `tiles.th` rows; `v` holds `16·c·tiles.count()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn input_transform_avx2(
    planes: *const f32,
    plane: usize,
    wp: usize,
    c: usize,
    tiles: &Tiles,
    v: *mut f32,
) {
    use std::arch::x86_64::*;
    let (tw, t) = (tiles.tw, tiles.count());
    for ch in 0..c {
        for u in 0..tiles.th {
            for q0 in (0..tw).step_by(8) {
                let lanes = tw - q0;
                let mask = lane_mask(lanes);
                // SAFETY (whole block): every read is lane l < lanes of a row at column
                // q0 + l (+ 1) ≤ tw < wp; every write lane l < lanes of V's row of tw.
                unsafe {
                    let load = |p: *const f32| {
                        if lanes >= 8 {
                            _mm256_loadu_ps(p)
                        } else {
                            _mm256_maskload_ps(p, mask)
                        }
                    };
                    // Row r of the tiles: plane (r % 2, b) at row u + r / 2; column j is plane
                    // b = j % 2 at column v + j / 2. Bᵀ d along each row's columns (d·B).
                    let e: [[__m256; 4]; 4] = std::array::from_fn(|r| {
                        let ev = planes.add((ch * 4 + r % 2 * 2) * plane + (u + r / 2) * wp + q0);
                        let od = ev.add(plane);
                        let (d0, d1, d2, d3) =
                            (load(ev), load(od), load(ev.add(1)), load(od.add(1)));
                        [
                            _mm256_sub_ps(d0, d2),
                            _mm256_add_ps(d1, d2),
                            _mm256_sub_ps(d2, d1),
                            _mm256_sub_ps(d1, d3),
                        ]
                    });
                    let at = ch * t + u * tw + q0;
                    let store = |xi: usize, x: __m256| {
                        let p = v.add(xi * c * t + at);
                        store_first(p, x, lanes)
                    };
                    // Then down the columns.
                    let [e0, e1, e2, e3] = e;
                    for j in 0..4 {
                        store(j, _mm256_sub_ps(e0[j], e2[j]));
                        store(4 + j, _mm256_add_ps(e1[j], e2[j]));
                        store(8 + j, _mm256_sub_ps(e2[j], e1[j]));
                        store(12 + j, _mm256_sub_ps(e1[j], e3[j]));
                    }
                }
            }
        }
    }
}

/// Lanes `0..n` of 8 set (all for `n ≥ 8`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn lane_mask(n: usize) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    let n = n.min(8) as i32;
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(n),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

/// `Y = Aᵀ M A` of every output channel's tiles (`M` `[16][CO][T]`), written or added into
/// the `[CO, HO, WO]` output, with `Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]`; the right and
/// bottom tiles of an odd-sized output drop what falls outside.
fn output_transform(m: &[f32], co: usize, tiles: &Tiles, g: &ConvGeom, out: Out) {
    let t = tiles.count();
    assert_eq!(m.len(), XI * co * t, "Winograd products size");
    assert!(
        tiles.th * 2 >= g.ho
            && tiles.th * 2 < g.ho + 2
            && tiles.tw * 2 >= g.wo
            && tiles.tw * 2 < g.wo + 2,
        "tiles do not cover the output"
    );
    assert!(available(), "Winograd convolutions need AVX2 and FMA");
    let (y, len, add) = match out {
        Out::Store(y) => (y.as_mut_ptr().cast::<f32>(), y.len(), false),
        Out::Add(y) => (y.as_mut_ptr(), y.len(), true),
    };
    assert_eq!(len, co * g.ho * g.wo, "conv output size");
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (y, add);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX2 is present; every read lies in `m` (tile index < T), every write is an
    // output (row < HO, column < WO) of a channel < CO, inside `y` (asserted above).
    unsafe {
        if add {
            output_transform_avx2::<true>(m.as_ptr(), co, tiles, g, y)
        } else {
            output_transform_avx2::<false>(m.as_ptr(), co, tiles, g, y)
        }
    };
}

/// [`output_transform`], 8 tiles (16 output columns) of a tile row at a time; with `ADD`
/// the results are added to what `y` holds.
///
/// # Safety
/// The CPU has AVX2; `m` holds `16·co·T` floats and `y` `co·HO·WO`; the tiles cover the
/// output with at most one row and column to spare.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn output_transform_avx2<const ADD: bool>(
    m: *const f32,
    co: usize,
    tiles: &Tiles,
    g: &ConvGeom,
    y: *mut f32,
) {
    use std::arch::x86_64::*;
    let (tw, t) = (tiles.tw, tiles.count());
    let (ho, wo) = (g.ho, g.wo);
    for o in 0..co {
        for u in 0..tiles.th {
            for q0 in (0..tw).step_by(8) {
                let lanes = tw - q0;
                let mask = lane_mask(lanes);
                // SAFETY (whole block): reads are lanes < lanes of M's rows (tile < T);
                // writes are columns 2·q0 + i < WO of rows 2u (+ 1) < HO of channel o.
                unsafe {
                    let mi: [__m256; XI] = std::array::from_fn(|xi| {
                        let p = m.add((xi * co + o) * t + u * tw + q0);
                        if lanes >= 8 {
                            _mm256_loadu_ps(p)
                        } else {
                            _mm256_maskload_ps(p, mask)
                        }
                    });
                    // Aᵀ M down the columns, then along the rows.
                    let s: [[__m256; 4]; 2] = [
                        std::array::from_fn(|j| {
                            _mm256_add_ps(_mm256_add_ps(mi[j], mi[4 + j]), mi[8 + j])
                        }),
                        std::array::from_fn(|j| {
                            _mm256_sub_ps(_mm256_sub_ps(mi[4 + j], mi[8 + j]), mi[12 + j])
                        }),
                    ];
                    let cols = (wo - 2 * q0).min(16);
                    for (r, s) in s.iter().enumerate() {
                        let row = 2 * u + r;
                        if row >= ho {
                            break;
                        }
                        let y0 = _mm256_add_ps(_mm256_add_ps(s[0], s[1]), s[2]);
                        let y1 = _mm256_sub_ps(_mm256_sub_ps(s[1], s[2]), s[3]);
                        // Interleave: y0[0] y1[0] y0[1] y1[1] …
                        let lo = _mm256_unpacklo_ps(y0, y1);
                        let hi = _mm256_unpackhi_ps(y0, y1);
                        let first = _mm256_permute2f128_ps::<0x20>(lo, hi);
                        let second = _mm256_permute2f128_ps::<0x31>(lo, hi);
                        let dst = y.add((o * ho + row) * wo + 2 * q0);
                        put::<ADD>(dst, first, cols.min(8));
                        put::<ADD>(dst.add(8), second, cols.saturating_sub(8));
                    }
                }
            }
        }
    }
}

/// Writes (or with `ADD` adds) the first `n` lanes of `x` at `dst`.
///
/// # Safety
/// The CPU has AVX2; `dst[..n]` is writable (and readable with `ADD`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn put<const ADD: bool>(dst: *mut f32, x: std::arch::x86_64::__m256, n: usize) {
    use std::arch::x86_64::*;
    // SAFETY: only lanes < n are read or written (the caller's contract).
    unsafe {
        let x = match (ADD, n) {
            (false, _) | (_, 0) => x,
            (true, 8..) => _mm256_add_ps(_mm256_loadu_ps(dst), x),
            (true, _) => _mm256_add_ps(_mm256_maskload_ps(dst, lane_mask(n)), x),
        };
        store_first(dst, x, n);
    }
}

/// Stores the first `min(n, 8)` lanes of `x` at `dst` as 8, 4, 2 and 1-float moves: a
/// masked store (`vmaskmovps`) is microcoded on AMD and made the transforms 3x slower.
///
/// # Safety
/// The CPU has AVX2; `dst[..min(n, 8)]` is writable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn store_first(dst: *mut f32, x: std::arch::x86_64::__m256, n: usize) {
    use std::arch::x86_64::*;
    // SAFETY: every move writes inside dst[..min(n, 8)].
    unsafe {
        if n >= 8 {
            return _mm256_storeu_ps(dst, x);
        }
        let (mut part, mut at) = (_mm256_castps256_ps128(x), 0);
        if n >= 4 {
            _mm_storeu_ps(dst, part);
            (part, at) = (_mm256_extractf128_ps::<1>(x), 4);
        }
        if n - at >= 2 {
            _mm_storel_epi64(dst.add(at).cast(), _mm_castps_si128(part));
            (part, at) = (_mm_movehl_ps(part, part), at + 2);
        }
        if n > at {
            _mm_store_ss(dst.add(at), part);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::kernels::{conv_backward_x_im2col, conv_forward_im2col};
    use super::super::test_inputs::{close, data};
    use super::*;

    /// `([n, c, h, w], co)`: the trunks' shapes and awkward ones (odd and non-square maps,
    /// channel counts off the 16-lane block, tile counts off the 6-row register tile).
    const CASES: &[([usize; 4], usize)] = &[
        ([2, 16, 8, 8], 16),
        ([2, 32, 28, 28], 32),
        ([2, 64, 14, 14], 64),
        ([2, 128, 7, 7], 128),
        ([3, 17, 5, 9], 20),
        ([1, 24, 2, 3], 40),
        ([2, 16, 11, 6], 33),
    ];

    #[test]
    fn forward_matches_im2col() {
        for &(shape, co) in CASES {
            let g = ConvGeom::new(shape, [3, 3], [1, 1], [1, 1]);
            assert!(applies(co, &g), "{shape:?}");
            let x = data(shape.iter().product(), 1);
            let w = data(co * g.k(), 2);
            let (got, table) = conv_forward(&x, &w, co, &g, None, true);
            let (want, _) = conv_forward_im2col(&x, &w, co, &g, false);
            close(&got, &want, &format!("forward {shape:?} -> {co}"));
            // Moments are those of the written planes.
            let p = g.p();
            for (plane, &(s, _)) in got.chunks_exact(p).zip(&table) {
                let sum: f32 = plane.iter().sum();
                assert!(
                    (s - sum).abs() <= 1e-3 * (1.0 + sum.abs()),
                    "moment {s} vs {sum}"
                );
            }
        }
    }

    #[test]
    fn forward_applies_norm_relu_to_the_input() {
        let (shape, co) = ([2, 16, 9, 7], 16);
        let g = ConvGeom::new(shape, [3, 3], [1, 1], [1, 1]);
        let x = data(shape.iter().product(), 3);
        let w = data(co * g.k(), 4);
        let (scale, shift) = (data(16, 5), data(16, 6));
        let norm = NormRelu {
            scale: &scale,
            shift: &shift,
        };
        let (got, _) = conv_forward(&x, &w, co, &g, Some(norm), false);
        let (want, _) = conv_forward_im2col(&norm.apply(&x, &g), &w, co, &g, false);
        close(&got, &want, "forward with BN + ReLU");
    }

    #[test]
    fn input_grad_matches_im2col() {
        for &(shape, co) in CASES {
            let g = ConvGeom::new(shape, [3, 3], [1, 1], [1, 1]);
            assert!(applies_input_grad(co, &g), "{shape:?}");
            let dy = data(g.n * co * g.p(), 7);
            let w = data(co * g.k(), 8);
            let want = conv_backward_x_im2col(&dy, &w, co, &g);
            let got = conv_backward_x(&dy, &w, co, &g, None).expect("returned");
            close(&got, &want, &format!("input grad {shape:?} -> {co}"));
            let base = data(want.len(), 9);
            let mut acc = base.clone();
            assert!(conv_backward_x(&dy, &w, co, &g, Some(&mut acc)).is_none());
            let sum: Vec<f32> = base.iter().zip(&want).map(|(a, b)| a + b).collect();
            close(&acc, &sum, &format!("input grad added {shape:?} -> {co}"));
        }
    }

    #[test]
    fn only_3x3_same_stride1_with_16_channels_applies() {
        let g = |c, k, s, p| ConvGeom::new([2, c, 8, 8], [k, k], [s, s], [p, p]);
        assert!(applies(16, &g(16, 3, 1, 1)));
        assert!(!applies(16, &g(16, 3, 2, 1)), "stride 2");
        assert!(!applies(16, &g(16, 3, 1, 0)), "valid padding");
        assert!(!applies(16, &g(16, 1, 1, 0)), "1x1");
        assert!(!applies(16, &g(8, 3, 1, 1)), "8 input channels");
        assert!(!applies(8, &g(16, 3, 1, 1)), "8 output channels");
        assert!(!applies_input_grad(8, &g(16, 3, 1, 1)), "8-channel dy");
    }
}
