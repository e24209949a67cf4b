//! Named tensors: the burn-independent unit of an exported encoder.

use super::error::TensorError;
use half::f16;
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Storage precision of exported weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// IEEE binary32.
    F32,
    /// IEEE binary16: half the size, ~3 significant digits, |x| ≤ 65504.
    F16,
}

impl Precision {
    /// Bytes per value.
    pub fn size_of(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 => 2,
        }
    }

    /// Lower-case name (`f32`, `f16`), as used in model cards.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
        }
    }
}

/// Flat tensor values in C (row-major) order.
///
/// Serialised as little-endian raw bytes rather than a sequence of numbers: postcard would
/// varint-encode f16 bit patterns (up to 3 bytes each, worse than f32 for negative weights),
/// and a byte blob decodes with a single copy. This also keeps the format independent of
/// whether `half`'s own serde feature is enabled.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// Single precision values.
    F32(Vec<f32>),
    /// Half precision values.
    F16(Vec<f16>),
}

impl TensorData {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Self::F32(v) => v.len(),
            Self::F16(v) => v.len(),
        }
    }

    /// True when there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The precision of the stored values.
    pub fn precision(&self) -> Precision {
        match self {
            Self::F32(_) => Precision::F32,
            Self::F16(_) => Precision::F16,
        }
    }

    /// The values as f32 (exact for both precisions: every f16 is an f32).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self {
            Self::F32(v) => v.clone(),
            Self::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
        }
    }

    /// Little-endian bytes of the values (the safetensors and container layout).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        match self {
            Self::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Self::F16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }

    /// Rebuild from little-endian bytes; `None` when the length is not a whole number of values.
    pub fn from_le_bytes(precision: Precision, bytes: &[u8]) -> Option<Self> {
        if !bytes.len().is_multiple_of(precision.size_of()) {
            return None;
        }
        Some(match precision {
            Precision::F32 => Self::F32(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            Precision::F16 => Self::F16(
                bytes
                    .chunks_exact(2)
                    .map(|c| f16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            ),
        })
    }
}

impl Serialize for TensorData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (index, variant) = match self {
            Self::F32(_) => (0, "F32"),
            Self::F16(_) => (1, "F16"),
        };
        serializer.serialize_newtype_variant(
            "TensorData",
            index,
            variant,
            &RawBytes(self.to_le_bytes()),
        )
    }
}

impl<'de> Deserialize<'de> for TensorData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename = "TensorData")]
        enum Repr {
            F32(RawBytes),
            F16(RawBytes),
        }
        let (precision, bytes) = match Repr::deserialize(deserializer)? {
            Repr::F32(b) => (Precision::F32, b.0),
            Repr::F16(b) => (Precision::F16, b.0),
        };
        Self::from_le_bytes(precision, &bytes).ok_or_else(|| {
            de::Error::custom(format_args!(
                "{} bytes is not a whole number of {} values",
                bytes.len(),
                precision.as_str()
            ))
        })
    }
}

/// A byte vector serialised with `serialize_bytes` (one length prefix, then raw bytes).
struct RawBytes(Vec<u8>);

impl Serialize for RawBytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for RawBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = RawBytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte array")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<RawBytes, E> {
                Ok(RawBytes(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<RawBytes, E> {
                Ok(RawBytes(v))
            }
            // Self-describing formats (JSON) write bytes as a sequence of numbers.
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawBytes, A::Error> {
                // Cap the pre-allocation: the hint comes from untrusted input.
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(RawBytes(out))
            }
        }
        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}

/// One named tensor of an exported encoder, e.g. `layer1.0.conv1.weight` with shape
/// `[64, 64, 3, 3]`. Names and layouts are the trainer's choice (PyTorch conventions for
/// interoperability); this layer only keeps them consistent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedTensor {
    /// Parameter or buffer name.
    pub name: String,
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Values in C order; `shape.iter().product()` of them.
    pub data: TensorData,
}

impl NamedTensor {
    /// A tensor whose data length matches its shape.
    pub fn new(
        name: impl Into<String>,
        shape: Vec<usize>,
        data: TensorData,
    ) -> Result<Self, TensorError> {
        let tensor = Self {
            name: name.into(),
            shape,
            data,
        };
        tensor.validate()?;
        Ok(tensor)
    }

    /// An f32 tensor whose data length matches its shape.
    pub fn f32(
        name: impl Into<String>,
        shape: Vec<usize>,
        data: Vec<f32>,
    ) -> Result<Self, TensorError> {
        Self::new(name, shape, TensorData::F32(data))
    }

    /// Number of values.
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// Storage precision.
    pub fn precision(&self) -> Precision {
        self.data.precision()
    }

    /// Check that the shape's element count equals the data length (overflow-safe, since
    /// decoded shapes are untrusted).
    pub fn validate(&self) -> Result<(), TensorError> {
        let expected = self
            .shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if expected != Some(self.data.len()) {
            return Err(TensorError::ShapeMismatch {
                name: self.name.clone(),
                shape: self.shape.clone(),
                expected: expected.unwrap_or(usize::MAX),
                actual: self.data.len(),
            });
        }
        Ok(())
    }

    /// A copy stored at `precision`. f32 → f16 rounds to nearest (ties to even) and refuses
    /// finite values beyond f16's range rather than silently turning weights into infinities;
    /// f16 → f32 is exact.
    pub fn to_precision(&self, precision: Precision) -> Result<Self, TensorError> {
        let data = match (&self.data, precision) {
            (TensorData::F32(v), Precision::F16) => {
                let mut out = Vec::with_capacity(v.len());
                for (index, &x) in v.iter().enumerate() {
                    let h = f16::from_f32(x);
                    if h.is_infinite() && x.is_finite() {
                        return Err(TensorError::F16Overflow {
                            name: self.name.clone(),
                            index,
                            value: x,
                        });
                    }
                    out.push(h);
                }
                TensorData::F16(out)
            }
            (TensorData::F16(_), Precision::F32) => TensorData::F32(self.data.to_f32_vec()),
            _ => self.data.clone(),
        };
        Ok(Self {
            name: self.name.clone(),
            shape: self.shape.clone(),
            data,
        })
    }
}
