//! BatchNorm computed on 2-D views.
//!
//! burn's stock BatchNorm broadcasts `[1, C, 1, 1]` statistics over `[N, C, H, W]`, which flex
//! runs ~20x slower than the same arithmetic on a `[N*C, H*W]` view (BURN_NOTES.md). This one
//! reshapes to 2-D, expands the per-channel statistics to one value per row, and uses a
//! two-pass variance. It also supports `affine = false`, which the projector and predictor
//! heads of BYOL need and burn's BatchNorm lacks.
//!
//! Mode follows burn's convention: batch statistics when the backend records gradients
//! (training on an autodiff backend, including a `no_grad` target network), running
//! statistics on the inner backend (after `Module::valid`).

use burn::config::Config;
use burn::module::{Module, Param, RunningState};
use burn::nn::conv::Conv2d;

use crate::ops::BatchStats;
use burn::tensor::{Tensor, backend::Backend};

/// Builds a [`BatchNorm`].
#[derive(Config, Debug)]
pub struct BatchNormConfig {
    /// Number of channels (features).
    pub num_features: usize,
    /// Learn a per-channel scale and shift.
    #[config(default = true)]
    pub affine: bool,
    /// Added to the variance before the square root.
    #[config(default = 1e-5)]
    pub epsilon: f64,
    /// Weight of the newest batch in the running statistics (PyTorch's convention).
    #[config(default = 0.1)]
    pub momentum: f64,
}

/// Batch normalisation over the batch (and spatial) dimensions.
#[derive(Module, Debug)]
pub struct BatchNorm<B: Backend> {
    /// Scale, present when affine.
    pub gamma: Option<Param<Tensor<B, 1>>>,
    /// Shift, present when affine.
    pub beta: Option<Param<Tensor<B, 1>>>,
    /// Running mean, used in evaluation.
    pub running_mean: RunningState<Tensor<B, 1>>,
    /// Running (unbiased) variance, used in evaluation.
    pub running_var: RunningState<Tensor<B, 1>>,
    /// See [`BatchNormConfig::momentum`].
    pub momentum: f64,
    /// See [`BatchNormConfig::epsilon`].
    pub epsilon: f64,
}

impl BatchNormConfig {
    /// Initialise with scale 1, shift 0, running mean 0 and variance 1.
    pub fn init<B: Backend>(&self, device: &B::Device) -> BatchNorm<B> {
        let c = self.num_features;
        let affine = |value: f32| {
            self.affine
                .then(|| Param::from_tensor(Tensor::full([c], value, device)))
        };
        BatchNorm {
            gamma: affine(1.0),
            beta: affine(0.0),
            running_mean: RunningState::new(Tensor::zeros([c], device)),
            running_var: RunningState::new(Tensor::ones([c], device)),
            momentum: self.momentum,
            epsilon: self.epsilon,
        }
    }
}

/// A feature map with its batch statistics where the convolution that produced it computed
/// them (`ops::conv2d_with_stats`): the norms below then skip their own pass over the map.
pub type WithStats<B> = (Tensor<B, 4>, Option<BatchStats>);

impl<B: Backend> BatchNorm<B> {
    /// `relu(forward4(x))`, fused into one pass where the backend has the fused kernels.
    pub fn forward4_relu(&self, (x, stats): WithStats<B>) -> Tensor<B, 4> {
        if super::fast_ops() && B::ad_enabled(&x.device()) {
            return self.forward4_fused(x, true, stats);
        }
        burn::tensor::activation::relu(self.forward4(x))
    }

    /// `relu(forward4(x) + residual)`, the end of a residual block: one fused op in training
    /// where the backend has the fused kernels and the norm is affine.
    pub fn forward4_add_relu(
        &self,
        (x, stats): WithStats<B>,
        residual: Tensor<B, 4>,
    ) -> Tensor<B, 4> {
        if let (Some(gamma), Some(beta)) = (&self.gamma, &self.beta)
            && super::fast_ops()
            && B::ad_enabled(&x.device())
        {
            let [n, c, h, w] = x.dims();
            let (y, mean, var) = crate::ops::batch_norm_add_relu_train(
                x,
                residual,
                gamma.val(),
                beta.val(),
                self.epsilon,
                stats,
            );
            self.update_running(mean.reshape([1, c]), var.reshape([1, c]), n * h * w);
            return y;
        }
        burn::tensor::activation::relu(self.forward4(x) + residual)
    }

    /// `conv(relu(forward4(x)))` for a bias-free convolution built by `block::conv`: in
    /// training, where the backend has the fused kernels and the norm is affine, one op that
    /// normalises inside the convolution's input read, so the normalised map is neither
    /// written nor kept for the backward (`ops::batch_norm_relu_conv2d`). The output comes
    /// with its batch statistics where the convolution computed them.
    pub fn forward4_relu_conv(&self, (x, stats): WithStats<B>, conv: &Conv2d<B>) -> WithStats<B> {
        if let (Some(gamma), Some(beta), None) = (&self.gamma, &self.beta, &conv.bias)
            && super::fast_ops()
            && B::ad_enabled(&x.device())
        {
            let [n, c, h, w] = x.dims();
            let (y, mean, var, y_stats) = crate::ops::batch_norm_relu_conv2d(
                x,
                gamma.val(),
                beta.val(),
                self.epsilon,
                conv.weight.val(),
                super::block::conv_options(conv),
                stats,
            );
            self.update_running(mean.reshape([1, c]), var.reshape([1, c]), n * h * w);
            return (y, y_stats);
        }
        super::block::conv_with_stats(conv, self.forward4_relu((x, stats)))
    }

    /// Training mode through `src/ops` (fused host kernels with an explicit backward where
    /// the backend has them), with or without the ReLU that follows.
    fn forward4_fused(
        &self,
        x: Tensor<B, 4>,
        relu: bool,
        stats: Option<BatchStats>,
    ) -> Tensor<B, 4> {
        let [n, c, h, w] = x.dims();
        let gamma = self.gamma.as_ref().map(|g| g.val());
        let beta = self.beta.as_ref().map(|b| b.val());
        let (y, mean, var) = if relu {
            crate::ops::batch_norm_relu_train(x, gamma, beta, self.epsilon, stats)
        } else {
            crate::ops::batch_norm_train(x, gamma, beta, self.epsilon, stats)
        };
        self.update_running(mean.reshape([1, c]), var.reshape([1, c]), n * h * w);
        y
    }

    /// Normalise feature maps `[N, C, H, W]` per channel.
    pub fn forward4(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward4_with((x, None))
    }

    /// [`Self::forward4`] of a map that may come with its batch statistics.
    pub fn forward4_with(&self, (x, stats): WithStats<B>) -> Tensor<B, 4> {
        let [n, c, h, w] = x.dims();
        if super::fast_ops() && B::ad_enabled(&x.device()) {
            return self.forward4_fused(x, false, stats);
        }
        let rows = x.reshape([n * c, h * w]);
        let per_row = |v: Tensor<B, 2>| v.repeat_dim(0, n).reshape([n * c, 1]);
        let (centered, var) = if B::ad_enabled(&rows.device()) {
            let mean = rows.clone().mean_dim(1).reshape([n, c]).mean_dim(0);
            let centered = rows - per_row(mean.clone());
            let var = centered
                .clone()
                .square()
                .mean_dim(1)
                .reshape([n, c])
                .mean_dim(0);
            self.update_running(mean, var.clone(), n * h * w);
            (centered, var)
        } else {
            let mean = self.running_mean.value().reshape([1, c]);
            let var = self.running_var.value().reshape([1, c]);
            (rows - per_row(mean), var)
        };
        let (scale, shift) = self.scale_shift(var);
        let mut y = centered * per_row(scale);
        if let Some(shift) = shift {
            y = y + per_row(shift);
        }
        y.reshape([n, c, h, w])
    }

    /// Normalise features `[N, C]` per column.
    pub fn forward2(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let [n, c] = x.dims();
        let (centered, var) = if B::ad_enabled(&x.device()) {
            let mean = x.clone().mean_dim(0);
            let centered = x - mean.clone();
            let var = centered.clone().square().mean_dim(0);
            self.update_running(mean, var.clone(), n);
            (centered, var)
        } else {
            let mean = self.running_mean.value().reshape([1, c]);
            (x - mean, self.running_var.value().reshape([1, c]))
        };
        let (scale, shift) = self.scale_shift(var);
        let y = centered * scale;
        match shift {
            Some(shift) => y + shift,
            None => y,
        }
    }

    /// `gamma / sqrt(var + eps)` and `beta`, both `[1, C]`.
    fn scale_shift(&self, var: Tensor<B, 2>) -> (Tensor<B, 2>, Option<Tensor<B, 2>>) {
        let c = var.dims()[1];
        let inv_std = var.add_scalar(self.epsilon).sqrt().recip();
        let scale = match &self.gamma {
            Some(gamma) => inv_std * gamma.val().reshape([1, c]),
            None => inv_std,
        };
        (scale, self.beta.as_ref().map(|b| b.val().reshape([1, c])))
    }

    /// Running statistics as PyTorch keeps them (unbiased variance), so evaluation matches.
    fn update_running(&self, mean: Tensor<B, 2>, var: Tensor<B, 2>, count: usize) {
        let c = mean.dims()[1];
        let m = self.momentum;
        let unbias = count as f64 / (count.max(2) - 1) as f64;
        let mean = mean.detach().reshape([c]);
        let var = var.detach().reshape([c]).mul_scalar(unbias);
        let device = mean.device();
        let running_mean = self.running_mean.value_sync().to_device(&device);
        let running_var = self.running_var.value_sync().to_device(&device);
        self.running_mean
            .update(running_mean.mul_scalar(1.0 - m) + mean.mul_scalar(m));
        self.running_var
            .update(running_var.mul_scalar(1.0 - m) + var.mul_scalar(m));
    }
}
