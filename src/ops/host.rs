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

/// A tensor's f32 values in host memory: borrowed from a flex tensor (whose storage is host
/// memory already), or an owned copy for backends that keep their own.
#[derive(Debug, Clone)]
pub(crate) enum HostBuf {
    /// Values read out of the backend.
    Owned(Vec<f32>),
    /// A contiguous flex tensor, kept alive by reference count: no copy, even when the
    /// tensor is shared (a block's input is read by two convolutions and kept by autodiff).
    #[cfg(feature = "flex")]
    Flex(burn::backend::flex::FlexTensor),
}

impl std::ops::Deref for HostBuf {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        match self {
            HostBuf::Owned(v) => v,
            #[cfg(feature = "flex")]
            HostBuf::Flex(t) => t
                .as_slice::<f32>()
                .expect("only contiguous f32 flex tensors are borrowed"),
        }
    }
}

/// Reads a float primitive as f32 host values: borrowed on flex when contiguous (copying
/// a shared activation cost ≈ 4 % of a training step in memmove and page faults, measured
/// with perf), read out otherwise.
pub(crate) fn host<B: Backend, const D: usize>(p: FloatTensor<B>) -> HostBuf {
    #[cfg(feature = "flex")]
    if core::any::TypeId::of::<B>() == core::any::TypeId::of::<burn::backend::Flex>() {
        let t: burn::backend::flex::FlexTensor = cast(p);
        if t.as_slice::<f32>().is_some() {
            return HostBuf::Flex(t);
        }
        return HostBuf::Owned(read::<burn::backend::Flex, D>(t));
    }
    HostBuf::Owned(read::<B, D>(p))
}

/// Reads a float primitive into an owned host vector.
fn read<B: Backend, const D: usize>(p: FloatTensor<B>) -> Vec<f32> {
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
