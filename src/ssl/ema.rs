//! The exponential moving average of the target network: `θt ← m θt + (1 − m) θo`.
//!
//! Only trained parameters are averaged; BatchNorm running statistics are not (each network
//! keeps its own, as the reference code does).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

/// Collects the online parameters in visit order (`None` for running statistics).
struct Collect<B: AutodiffBackend> {
    values: Vec<Option<Tensor<B::InnerBackend, 1>>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Collect<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let value = param.val();
        let trained = value.is_require_grad();
        let n = value.shape().num_elements();
        self.values
            .push(trained.then(|| value.inner().reshape([n])));
    }
}

/// Writes the averaged values into the target, in the same visit order.
struct Average<B: AutodiffBackend> {
    values: std::vec::IntoIter<Option<Tensor<B::InnerBackend, 1>>>,
    momentum: f64,
}

impl<B: AutodiffBackend> ModuleMapper<B> for Average<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let Some(Some(online)) = self.values.next() else {
            return param;
        };
        let m = self.momentum;
        param.map(|target| {
            let dims = target.dims();
            let averaged = target.inner().mul_scalar(m) + online.reshape(dims).mul_scalar(1.0 - m);
            Tensor::from_inner(averaged)
        })
    }
}

/// Move `target` toward `online` (the same module type) with momentum `momentum`.
pub fn ema_update<B: AutodiffBackend, M: Module<B>>(target: M, online: &M, momentum: f64) -> M {
    let mut collect = Collect::<B> { values: Vec::new() };
    online.visit(&mut collect);
    let mut average = Average::<B> {
        values: collect.values.into_iter(),
        momentum,
    };
    target.map(&mut average)
}

/// A target network: a copy of `online` with its own BatchNorm statistics and no gradients.
///
/// `Module::clone` would share the BatchNorm running statistics with the online network
/// (they sit behind a shared lock), so the copy goes through the inner backend.
pub fn detached_copy<B: AutodiffBackend, M: burn::module::AutodiffModule<B>>(online: &M) -> M {
    M::from_inner(online.valid()).no_grad()
}
