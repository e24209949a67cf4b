//! The encoder export: a model card plus named tensors, stored in the edgessl container.

use super::card::ModelCard;
use super::error::{ExportError, TensorError};
use super::tensor::{NamedTensor, Precision};
use crate::checkpoint::atomic::write_bytes_atomic;
use crate::checkpoint::{PayloadKind, read_file, write_file};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// A trained encoder ready to hand to users: weights plus the card that says how to use them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderExport {
    /// Provenance and input contract.
    pub card: ModelCard,
    /// Weights and buffers, in the trainer's order.
    pub tensors: Vec<NamedTensor>,
}

/// Where the TOML card of an export at `path` goes: `<file name>.card.toml` beside it, so an
/// `.edgessl` and a `.safetensors` export of the same stem do not overwrite each other's card.
pub fn card_path_for(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".card.toml");
    path.with_file_name(name)
}

impl EncoderExport {
    /// Build an export, filling the card's `tensor_count`, `param_count` and `precision` from
    /// the tensors. All tensors must share one precision and have unique names.
    pub fn new(mut card: ModelCard, tensors: Vec<NamedTensor>) -> Result<Self, TensorError> {
        if let Some(first) = tensors.first() {
            card.precision = first.precision();
        }
        card.tensor_count = tensors.len() as u64;
        card.param_count = tensors.iter().map(|t| t.numel() as u64).sum();
        let export = Self { card, tensors };
        export.validate()?;
        Ok(export)
    }

    /// Total number of values.
    pub fn param_count(&self) -> u64 {
        self.tensors.iter().map(|t| t.numel() as u64).sum()
    }

    /// Check shapes, name uniqueness, uniform precision and the card's counts.
    pub fn validate(&self) -> Result<(), TensorError> {
        let mut names = HashSet::with_capacity(self.tensors.len());
        for t in &self.tensors {
            t.validate()?;
            if !names.insert(t.name.as_str()) {
                return Err(TensorError::DuplicateName {
                    name: t.name.clone(),
                });
            }
            if t.precision() != self.card.precision {
                return Err(TensorError::MixedPrecision {
                    name: t.name.clone(),
                    expected: self.card.precision,
                    found: t.precision(),
                });
            }
        }
        let mismatch = |field, card: u64, actual: u64| {
            (card != actual).then(|| TensorError::CardMismatch {
                field,
                card: card.to_string(),
                actual: actual.to_string(),
            })
        };
        if let Some(e) = mismatch(
            "tensor_count",
            self.card.tensor_count,
            self.tensors.len() as u64,
        )
        .or_else(|| mismatch("param_count", self.card.param_count, self.param_count()))
        {
            return Err(e);
        }
        Ok(())
    }

    /// A copy with every tensor stored at `precision` (see [`NamedTensor::to_precision`]).
    pub fn to_precision(&self, precision: Precision) -> Result<Self, TensorError> {
        let tensors = self
            .tensors
            .iter()
            .map(|t| t.to_precision(precision))
            .collect::<Result<Vec<_>, _>>()?;
        let mut card = self.card.clone();
        card.precision = precision;
        Ok(Self { card, tensors })
    }

    /// Validate, then write the export atomically to `path` (container, kind = encoder export)
    /// and its card to [`card_path_for`]`(path)`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), ExportError> {
        let path = path.as_ref();
        self.validate()?;
        write_file(path, PayloadKind::EncoderExport, self)?;
        write_card(&self.card, &card_path_for(path))
    }

    /// Read, verify and validate an export written by [`EncoderExport::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ExportError> {
        let path = path.as_ref();
        let export: Self = read_file(path, PayloadKind::EncoderExport)?;
        export.validate().map_err(|source| ExportError::Invalid {
            path: path.to_owned(),
            source,
        })?;
        Ok(export)
    }
}

/// Write a model card as TOML, atomically.
pub fn write_card(card: &ModelCard, path: &Path) -> Result<(), ExportError> {
    let text = card.to_toml().map_err(|e| ExportError::Card {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    write_bytes_atomic(path, text.as_bytes()).map_err(|e| ExportError::io(path, e))
}

/// Read a model card TOML file.
pub fn read_card(path: &Path) -> Result<ModelCard, ExportError> {
    let text = std::fs::read_to_string(path).map_err(|e| ExportError::io(path, e))?;
    ModelCard::from_toml(&text).map_err(|e| ExportError::Card {
        path: path.to_owned(),
        message: e.to_string(),
    })
}
