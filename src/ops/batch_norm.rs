//! BatchNorm on 2-D views, composed of differentiable burn ops (any backend, autodiff for
//! free).
//!
//! Why: burn's `BatchNorm` broadcasts `[1, C, 1, 1]` tensors against `[N, C, H, W]`, and
//! flex's 4-D broadcasting is ~20x slower than the same arithmetic on a 2-D
//! `[N*C, H*W]` view with a `[N*C, 1]` column (BURN_NOTES.md). Here every elementwise op
//! sees 2-D operands: per-channel statistics are reduced in two steps (rows, then the
//! `[N, C]` table) and expanded back to one value per row.
//!
//! The variance is two-pass (`mean((x - mean)²)`), so there is no `E[x²] − mean²`
//! cancellation for inputs with a large mean.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// Expands a per-channel `[1, C]` row to one value per row of the `[N*C, HW]` view.
fn per_row<B: Backend>(c_row: Tensor<B, 2>, n: usize, c: usize) -> Tensor<B, 2> {
    c_row.expand([n, c]).reshape([n * c, 1])
}

/// `[1, C]` view of an optional per-channel vector.
fn row<B: Backend>(v: Tensor<B, 1>, c: usize) -> Tensor<B, 2> {
    v.reshape([1, c])
}

/// Training-mode BatchNorm of an `[N, C, H, W]` input with batch statistics.
///
/// Returns `(y, mean, var)`: `mean` and the biased variance `var` are the per-channel
/// batch statistics `[C]` (still attached to the graph; pass them to
/// [`update_running_stats`], which detaches them). `gamma`/`beta` are the optional affine
/// parameters `[C]` (`None` = affine off, like PyTorch's `affine=False`).
pub fn batch_norm_train<B: Backend>(
    x: Tensor<B, 4>,
    gamma: Option<Tensor<B, 1>>,
    beta: Option<Tensor<B, 1>>,
    eps: f64,
) -> (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>) {
    let [n, c, h, w] = x.dims();
    let hw = h * w;
    let count = (n * hw) as f64;
    let x2 = x.reshape([n * c, hw]);

    // Two-step reduction: per row ([N*C, 1]), then over the batch ([1, C]).
    let mean_c = x2
        .clone()
        .sum_dim(1)
        .reshape([n, c])
        .sum_dim(0)
        .div_scalar(count);
    let xc = x2 - per_row(mean_c.clone(), n, c);
    let var_c = (xc.clone() * xc.clone())
        .sum_dim(1)
        .reshape([n, c])
        .sum_dim(0)
        .div_scalar(count);

    let inv_std = var_c.clone().add_scalar(eps).sqrt().recip();
    let scale = match gamma {
        Some(g) => inv_std * row(g, c),
        None => inv_std,
    };
    let mut y = xc * per_row(scale, n, c);
    if let Some(b) = beta {
        y = y + per_row(row(b, c), n, c);
    }
    (
        y.reshape([n, c, h, w]),
        mean_c.reshape([c]),
        var_c.reshape([c]),
    )
}

/// Training-mode BatchNorm of an `[N, C]` input (projector / predictor heads).
///
/// Same contract as [`batch_norm_train`]; the statistics are over the batch axis.
pub fn batch_norm_train_2d<B: Backend>(
    x: Tensor<B, 2>,
    gamma: Option<Tensor<B, 1>>,
    beta: Option<Tensor<B, 1>>,
    eps: f64,
) -> (Tensor<B, 2>, Tensor<B, 1>, Tensor<B, 1>) {
    let [n, c] = x.dims();
    let mean_c = x.clone().mean_dim(0);
    let xc = x - mean_c.clone();
    let var_c = (xc.clone() * xc.clone()).mean_dim(0);
    let inv_std = var_c.clone().add_scalar(eps).sqrt().recip();
    let scale = match gamma {
        Some(g) => inv_std * row(g, c),
        None => inv_std,
    };
    let mut y = xc * scale;
    if let Some(b) = beta {
        y = y + row(b, c);
    }
    let _ = n;
    (y, mean_c.reshape([c]), var_c.reshape([c]))
}

/// Per-channel `(scale, shift)` `[1, C]` of inference-mode BatchNorm.
fn eval_affine<B: Backend>(
    running_mean: Tensor<B, 1>,
    running_var: Tensor<B, 1>,
    gamma: Option<Tensor<B, 1>>,
    beta: Option<Tensor<B, 1>>,
    eps: f64,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let c = running_mean.dims()[0];
    let inv_std = row(running_var, c).add_scalar(eps).sqrt().recip();
    let scale = match gamma {
        Some(g) => inv_std * row(g, c),
        None => inv_std,
    };
    let mut shift = row(running_mean, c).neg() * scale.clone();
    if let Some(b) = beta {
        shift = shift + row(b, c);
    }
    (scale, shift)
}

/// Inference-mode BatchNorm of an `[N, C, H, W]` input with running statistics:
/// `y = (x − running_mean) / sqrt(running_var + eps) · gamma + beta`, as one fused
/// scale-and-shift on the 2-D view.
pub fn batch_norm_eval<B: Backend>(
    x: Tensor<B, 4>,
    running_mean: Tensor<B, 1>,
    running_var: Tensor<B, 1>,
    gamma: Option<Tensor<B, 1>>,
    beta: Option<Tensor<B, 1>>,
    eps: f64,
) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let (scale, shift) = eval_affine(running_mean, running_var, gamma, beta, eps);
    let y = x.reshape([n * c, h * w]) * per_row(scale, n, c) + per_row(shift, n, c);
    y.reshape([n, c, h, w])
}

/// Inference-mode BatchNorm of an `[N, C]` input with running statistics.
pub fn batch_norm_eval_2d<B: Backend>(
    x: Tensor<B, 2>,
    running_mean: Tensor<B, 1>,
    running_var: Tensor<B, 1>,
    gamma: Option<Tensor<B, 1>>,
    beta: Option<Tensor<B, 1>>,
    eps: f64,
) -> Tensor<B, 2> {
    let (scale, shift) = eval_affine(running_mean, running_var, gamma, beta, eps);
    x * scale + shift
}

/// Running-statistics update, PyTorch convention:
/// `running = (1 − momentum) · running + momentum · batch`, with the variance made
/// unbiased (`var · count / (count − 1)`, `count` = N·H·W values per channel) before
/// averaging when `unbiased` is true. The batch statistics are detached. Returns
/// `(running_mean, running_var)`.
///
/// burn's own `BatchNorm` averages the *biased* variance: pass `unbiased = false` to
/// reproduce it exactly, `true` to match PyTorch.
pub fn update_running_stats<B: Backend>(
    running_mean: Tensor<B, 1>,
    running_var: Tensor<B, 1>,
    batch_mean: Tensor<B, 1>,
    batch_var: Tensor<B, 1>,
    count: usize,
    momentum: f64,
    unbiased: bool,
) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let var = batch_var.detach();
    let var = if unbiased && count > 1 {
        var.mul_scalar(count as f64 / (count - 1) as f64)
    } else {
        var
    };
    let mean = running_mean.mul_scalar(1.0 - momentum) + batch_mean.detach().mul_scalar(momentum);
    let var = running_var.mul_scalar(1.0 - momentum) + var.mul_scalar(momentum);
    (mean, var)
}
