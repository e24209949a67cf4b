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

impl HostBuf {
    /// The values to overwrite in place: an owned copy as it is, a flex tensor's own
    /// storage when nothing else holds it (contiguous, as every borrowed one is); `Err`
    /// with the buffer untouched otherwise.
    pub(crate) fn into_mut(self) -> Result<HostMut, HostBuf> {
        match self {
            HostBuf::Owned(v) => Ok(HostMut::Owned(v)),
            #[cfg(feature = "flex")]
            HostBuf::Flex(t) => match t.layout().contiguous_offsets() {
                Some((start, end)) if t.is_unique() => Ok(HostMut::Flex(t, start..end)),
                _ => Err(HostBuf::Flex(t)),
            },
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

/// A tensor's f32 values to overwrite in place (a gradient turned into the next one): the
/// flex tensor's own storage when nothing else holds it, an owned copy otherwise.
#[derive(Debug)]
pub(crate) enum HostMut {
    /// Values read out of the backend, or copied from a shared flex tensor.
    Owned(Vec<f32>),
    /// A uniquely held, contiguous f32 flex tensor and the range of its storage it views.
    #[cfg(feature = "flex")]
    Flex(burn::backend::flex::FlexTensor, core::ops::Range<usize>),
}

impl std::ops::Deref for HostMut {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        match self {
            HostMut::Owned(v) => v,
            #[cfg(feature = "flex")]
            HostMut::Flex(t, r) => &t.storage::<f32>()[r.clone()],
        }
    }
}

impl std::ops::DerefMut for HostMut {
    fn deref_mut(&mut self) -> &mut [f32] {
        match self {
            HostMut::Owned(v) => v,
            #[cfg(feature = "flex")]
            HostMut::Flex(t, r) => {
                let storage = t
                    .try_storage_mut::<f32>()
                    .expect("held uniquely since host_mut checked it");
                &mut storage[r.clone()]
            }
        }
    }
}

impl HostMut {
    /// The values as a float primitive of shape `shape` on `device` (the same storage on
    /// flex).
    pub(crate) fn into_device<B: Backend, const D: usize>(
        self,
        shape: [usize; D],
        device: &B::Device,
    ) -> FloatTensor<B> {
        match self {
            HostMut::Owned(v) => device_tensor::<B, D>(v, shape, device),
            #[cfg(feature = "flex")]
            HostMut::Flex(t, _) => {
                debug_assert_eq!(t.layout().shape().to_vec(), shape.to_vec());
                cast(t)
            }
        }
    }
}

/// Takes a float primitive's values for overwriting: on flex the tensor's own storage when
/// it is uniquely held and contiguous (a gradient usually is, once autodiff hands it over),
/// a copy otherwise.
pub(crate) fn host_mut<B: Backend, const D: usize>(p: FloatTensor<B>) -> HostMut {
    #[cfg(feature = "flex")]
    if core::any::TypeId::of::<B>() == core::any::TypeId::of::<burn::backend::Flex>() {
        let t: burn::backend::flex::FlexTensor = cast(p);
        if t.dtype() != burn::tensor::DType::F32 {
            return HostMut::Owned(read::<burn::backend::Flex, D>(t));
        }
        return match t.layout().contiguous_offsets() {
            Some((start, end)) if t.is_unique() => HostMut::Flex(t, start..end),
            Some((start, end)) => HostMut::Owned(t.storage::<f32>()[start..end].to_vec()),
            None => HostMut::Owned(read::<burn::backend::Flex, D>(t)),
        };
    }
    HostMut::Owned(read::<B, D>(p))
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::backend::Flex;

    fn flex(values: &[f32]) -> FloatTensor<Flex> {
        device_tensor::<Flex, 1>(values.to_vec(), [values.len()], &Default::default())
    }

    fn values(t: FloatTensor<Flex>) -> Vec<f32> {
        read::<Flex, 1>(t)
    }

    /// A uniquely held tensor is overwritten in its own storage; a shared one is copied,
    /// so the other holder never sees the write.
    #[test]
    fn host_mut_writes_in_place_only_when_nothing_else_holds_the_tensor() {
        let mut unique = host_mut::<Flex, 1>(flex(&[1.0, 2.0, 3.0]));
        assert!(matches!(unique, HostMut::Flex(..)));
        unique[1] = -5.0;
        let back = unique.into_device::<Flex, 1>([3], &Default::default());
        assert_eq!(values(back), [1.0, -5.0, 3.0]);

        // A borrowed buffer likewise: its own storage when it is the only holder.
        let mut own = HostBuf::Flex(cast(flex(&[7.0, 8.0])))
            .into_mut()
            .expect("unique");
        assert!(matches!(own, HostMut::Flex(..)));
        own[0] = 1.0;
        assert_eq!(&own[..], [1.0, 8.0]);
        let held = flex(&[7.0, 8.0]);
        let borrowed = HostBuf::Flex(cast(held.clone()));
        let back = borrowed.into_mut().expect_err("the tensor is still held");
        assert_eq!(&back[..], [7.0, 8.0]);
        assert_eq!(values(held), [7.0, 8.0]);

        let kept = flex(&[4.0, 5.0]);
        let mut shared = host_mut::<Flex, 1>(kept.clone());
        assert!(matches!(shared, HostMut::Owned(_)));
        shared[0] = 9.0;
        assert_eq!(&shared[..], [9.0, 5.0]);
        assert_eq!(values(kept), [4.0, 5.0]);
    }

    /// A strided view (here a transpose) is read out in logical order, not storage order.
    #[test]
    fn host_mut_reads_a_strided_tensor_in_logical_order() {
        let m = Tensor::<Flex, 2>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]),
            &Default::default(),
        );
        let t = m.transpose().into_primitive().tensor();
        let got = host_mut::<Flex, 2>(t);
        assert!(matches!(got, HostMut::Owned(_)));
        assert_eq!(&got[..], [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }
}
