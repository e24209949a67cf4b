//! Fast training ops for small CNNs on CPU backends, drop-in for burn's stock ones.
//!
//! * [`conv2d`]: convolution with an explicit backward (fast path on flex / ndarray /
//!   candle, bare or under `Autodiff`; stock burn elsewhere): an implicit GEMM with no
//!   column matrix on x86-64 with AVX2 + FMA, im2col + GEMM otherwise; there the 3x3
//!   stride-1 convolutions on maps of 12x12 and more (8x8 with 128 channels) run as
//!   Winograd F(2x2, 3x3) (forward and input gradient; [`winograd_in_use`]).
//! * [`conv2d_with_shortcut_stats`]: a downsampling block's strided convolution and its 1x1
//!   projection shortcut as one op on the implicit GEMM (the projection reads the
//!   convolution's input planes; its input gradient is summed into the convolution's in
//!   registers), two [`conv2d_with_stats`] calls elsewhere.
//! * [`batch_norm_train`] and friends: BatchNorm with fused host kernels and an explicit
//!   backward on flex and candle, 2-D-view burn ops on any other (ndarray included);
//!   [`batch_norm_relu_train`] fuses the ReLU that follows, [`batch_norm_add_relu_train`]
//!   a residual block's end (BatchNorm, shortcut add, ReLU).
//! * [`batch_norm_relu_conv2d`]: `conv(relu(BN(x)), w)` as one op, the BatchNorm + ReLU
//!   applied in the convolution's input read (the normalised map is never stored).
//! * [`conv2d_forward`] / [`batch_norm_forward`]: the same, as drop-in replacements for
//!   `Conv2d::forward` / `BatchNorm::forward` on burn's own modules.
//!
//! Everything is generic over `B: Backend` and differentiable on an autodiff backend.

mod batch_norm;
mod conv;
mod conv_shortcut;
mod host;
mod implicit_gemm;
mod kernels;
mod modules;
mod norm_conv;
mod phase_planes;
#[cfg(test)]
mod test_inputs;
mod winograd;

pub use batch_norm::{
    BatchStats, batch_norm_add_relu_train, batch_norm_eval, batch_norm_eval_2d,
    batch_norm_relu_train, batch_norm_train, batch_norm_train_2d, batch_norm_train_composite,
    has_fused_batch_norm, update_running_stats,
};
pub use conv::{conv2d, conv2d_with_stats, has_fast_conv};
pub use conv_shortcut::conv2d_with_shortcut_stats;
pub use modules::{batch_norm_forward, conv2d_forward};
pub use norm_conv::batch_norm_relu_conv2d;

/// Whether this process runs its 3x3 stride-1 convolutions on large enough maps as
/// Winograd F(2x2, 3x3): [`crate::runtime::winograd`] is on and the CPU has the kernels
/// (x86-64 with AVX2 and FMA).
pub fn winograd_in_use() -> bool {
    crate::runtime::winograd() && implicit_gemm::available()
}

/// Whether [`conv2d`] runs the forward and input gradient of a convolution from `c_in` to
/// `c_out` channels (square `kernel`, `stride`, padding `kernel / 2`) on an `h x w` map as
/// Winograd F(2x2, 3x3) in this process: the rule the dispatch applies, for FLOP counts.
pub fn winograd_conv(
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    [h, w]: [usize; 2],
) -> bool {
    let pad = kernel / 2;
    let g = kernels::ConvGeom::new(
        [1, c_in, h, w],
        [kernel, kernel],
        [stride, stride],
        [pad, pad],
    );
    winograd::pays_off(c_out, &g)
}
