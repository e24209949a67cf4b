//! The BYOL loss `2 − 2 cos(p, z)`, symmetrised over the two views.

use burn::tensor::{Tensor, backend::Backend};

/// Rows scaled to unit length (a tiny floor keeps a zero row finite).
pub fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x.clone().square().sum_dim(1).add_scalar(1e-12).sqrt();
    x / norm
}

/// `mean(2 − 2 cos(p1, z2)) + mean(2 − 2 cos(p2, z1))` for predictions `p` and targets `z`
/// that hold view 1 in rows `0..n` and view 2 in rows `n..2n`.
pub fn symmetric_loss<B: Backend>(p: Tensor<B, 2>, z: Tensor<B, 2>) -> Tensor<B, 1> {
    let n = p.dims()[0] / 2;
    // Pair each prediction with the other view's target by swapping the halves of z.
    let swapped = Tensor::cat(vec![z.clone().narrow(0, n, n), z.narrow(0, 0, n)], 0);
    let cos = (l2_normalize(p) * l2_normalize(swapped)).sum_dim(1);
    // Both halves have n rows, so the sum of the two means is 2 * the mean over 2n rows.
    (cos.mean().neg().add_scalar(1.0)).mul_scalar(4.0)
}
