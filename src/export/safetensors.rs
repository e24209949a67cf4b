//! safetensors export, the format PyTorch, JAX and Hugging Face tools load directly.

use super::card::ModelCard;
use super::encoder::{EncoderExport, card_path_for, write_card};
use super::error::ExportError;
use super::tensor::{NamedTensor, Precision, TensorData};
use crate::checkpoint::atomic::write_bytes_atomic;
use ::safetensors::tensor::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

/// Adapts a [`NamedTensor`] to the safetensors crate's `View`.
struct TensorView<'a> {
    tensor: &'a NamedTensor,
    bytes: Vec<u8>,
}

impl View for &TensorView<'_> {
    fn dtype(&self) -> Dtype {
        match self.tensor.precision() {
            Precision::F32 => Dtype::F32,
            Precision::F16 => Dtype::F16,
        }
    }

    fn shape(&self) -> &[usize] {
        &self.tensor.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }

    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// The export as safetensors bytes: tensors under their own names (F32 or F16, little-endian,
/// C order) and the card in `__metadata__` (see [`ModelCard::to_metadata`]).
pub fn safetensors_bytes(
    export: &EncoderExport,
) -> Result<Vec<u8>, ::safetensors::SafeTensorError> {
    let views: Vec<TensorView<'_>> = export
        .tensors
        .iter()
        .map(|tensor| TensorView {
            tensor,
            bytes: tensor.data.to_le_bytes(),
        })
        .collect();
    ::safetensors::serialize(
        views.iter().map(|v| (v.tensor.name.as_str(), v)),
        Some(export.card.to_metadata()),
    )
}

/// Validate, then write the export as a safetensors file (atomically) and its card to
/// [`card_path_for`]`(path)`.
pub fn write_safetensors(
    path: impl AsRef<Path>,
    export: &EncoderExport,
) -> Result<(), ExportError> {
    let path = path.as_ref();
    export.validate()?;
    let bytes = safetensors_bytes(export).map_err(|source| ExportError::Safetensors {
        path: path.to_owned(),
        source,
    })?;
    write_bytes_atomic(path, &bytes).map_err(|e| ExportError::io(path, e))?;
    write_card(&export.card, &card_path_for(path))
}

/// A safetensors file read back.
#[derive(Debug, Clone, PartialEq)]
pub struct SafetensorsFile {
    /// Tensors in file (offset) order.
    pub tensors: Vec<NamedTensor>,
    /// The raw `__metadata__` strings.
    pub metadata: HashMap<String, String>,
    /// The edgessl model card, when the file was written by edgessl.
    pub card: Option<ModelCard>,
}

/// Read an F32/F16 safetensors file with the safetensors crate.
pub fn read_safetensors(path: impl AsRef<Path>) -> Result<SafetensorsFile, ExportError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| ExportError::io(path, e))?;
    let st_err = |source| ExportError::Safetensors {
        path: path.to_owned(),
        source,
    };
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(st_err)?;
    let file = SafeTensors::deserialize(&bytes).map_err(st_err)?;
    let mut tensors = Vec::new();
    for name in header.offset_keys() {
        let view = file.tensor(&name).map_err(st_err)?;
        let precision = match view.dtype() {
            Dtype::F32 => Precision::F32,
            Dtype::F16 => Precision::F16,
            other => {
                return Err(ExportError::UnsupportedDtype {
                    path: path.to_owned(),
                    name,
                    dtype: format!("{other:?}"),
                });
            }
        };
        // The crate has already checked the byte length against shape and dtype.
        let data = TensorData::from_le_bytes(precision, view.data())
            .ok_or_else(|| st_err(::safetensors::SafeTensorError::TensorInvalidInfo))?;
        tensors.push(NamedTensor {
            name,
            shape: view.shape().to_vec(),
            data,
        });
    }
    let metadata = header.metadata().clone().unwrap_or_default();
    let card = match ModelCard::from_metadata(&metadata) {
        None => None,
        Some(Ok(card)) => Some(card),
        Some(Err(message)) => {
            return Err(ExportError::Card {
                path: path.to_owned(),
                message,
            });
        }
    };
    Ok(SafetensorsFile {
        tensors,
        metadata,
        card,
    })
}
