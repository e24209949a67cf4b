//! Errors of the export layer; those about files name the file.

use crate::checkpoint::CheckpointError;
use std::path::PathBuf;
use thiserror::Error;

/// A tensor set that is inconsistent in itself (no file involved).
#[derive(Debug, Error, Clone, PartialEq)]
pub enum TensorError {
    /// The element count implied by the shape differs from the data length.
    #[error("tensor `{name}`: shape {shape:?} needs {expected} values, data has {actual}")]
    ShapeMismatch {
        /// Tensor name.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
        /// Product of the shape (saturated on overflow).
        expected: usize,
        /// Values present.
        actual: usize,
    },
    /// Two tensors share a name; loaders key by name, so one would be lost.
    #[error("duplicate tensor name `{name}`")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// A finite f32 value does not fit in f16 (|x| > 65504) and would become infinite.
    #[error("tensor `{name}`: value {value} at index {index} overflows f16; export as f32")]
    F16Overflow {
        /// Tensor name.
        name: String,
        /// Flat index of the first offending value.
        index: usize,
        /// The value.
        value: f32,
    },
    /// Tensors of different precisions in one export.
    #[error("tensor `{name}` is {found:?} but the export is {expected:?}")]
    MixedPrecision {
        /// Tensor name.
        name: String,
        /// Precision of the export (its first tensor or its card).
        expected: super::Precision,
        /// Precision of this tensor.
        found: super::Precision,
    },
    /// The card's counts or precision disagree with the tensors.
    #[error("model card says {field} = {card}, tensors give {actual}")]
    CardMismatch {
        /// Card field name.
        field: &'static str,
        /// Value in the card.
        card: String,
        /// Value computed from the tensors.
        actual: String,
    },
}

/// An error writing or reading an export file.
#[derive(Debug, Error)]
pub enum ExportError {
    /// The edgessl container layer failed (names the file).
    #[error(transparent)]
    Container(#[from] CheckpointError),
    /// The operating system refused.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file decoded but its tensors or card are inconsistent.
    #[error("{}: invalid export: {source}", path.display())]
    Invalid {
        /// The file involved.
        path: PathBuf,
        /// What is inconsistent.
        #[source]
        source: TensorError,
    },
    /// The in-memory tensors are inconsistent (nothing was written).
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// The safetensors crate refused the file or the tensors.
    #[error("{}: safetensors: {source}", path.display())]
    Safetensors {
        /// The file involved.
        path: PathBuf,
        /// The crate's error.
        #[source]
        source: ::safetensors::SafeTensorError,
    },
    /// A safetensors tensor of a dtype edgessl does not handle.
    #[error("{}: tensor `{name}` has dtype {dtype}; only F32 and F16 are supported", path.display())]
    UnsupportedDtype {
        /// The file involved.
        path: PathBuf,
        /// Tensor name.
        name: String,
        /// The dtype found.
        dtype: String,
    },
    /// A model card that cannot be written or parsed.
    #[error("{}: model card: {message}", path.display())]
    Card {
        /// The file involved.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A malformed `.npy` file or embedding matrix.
    #[error("{}: {message}", path.display())]
    Embeddings {
        /// The file involved.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl ExportError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
