//! Moving tensors between burn backends and host slices, and routing by backend type.

use core::any::Any;

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};

/// Moves a value to another type that is known (by `TypeId`) to be the same type.
pub(crate) fn cast<A: 'static, T: 'static>(a: A) -> T {
    let boxed: Box<dyn Any> = Box::new(a);
    *boxed
        .downcast::<T>()
        .expect("type checked by TypeId before the cast")
}

/// Reads a float primitive into host memory as f32 (zero-copy on flex when unshared).
pub(crate) fn host<B: Backend, const D: usize>(p: FloatTensor<B>) -> Vec<f32> {
    Tensor::<B, D>::from_primitive(TensorPrimitive::Float(p))
        .into_data()
        .into_vec::<f32>()
        .expect("fast paths are f32-only (checked by the callers)")
}

/// Wraps a host buffer as a float primitive on `device`.
pub(crate) fn device_tensor<B: Backend, const D: usize>(
    v: Vec<f32>,
    shape: [usize; D],
    device: &B::Device,
) -> FloatTensor<B> {
    Tensor::<B, D>::from_data(TensorData::new(v, shape), device)
        .into_primitive()
        .tensor()
}

/// Whether `B` is the backend `X`, bare or wrapped in burn's default `Autodiff`.
pub(crate) fn is_backend<B: 'static, X: burn::tensor::backend::Backend>() -> bool {
    let id = std::any::TypeId::of::<B>();
    id == std::any::TypeId::of::<X>() || id == std::any::TypeId::of::<burn::backend::Autodiff<X>>()
}
