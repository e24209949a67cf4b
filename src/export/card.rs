//! The model card: everything a user needs to feed an exported encoder correctly and to know
//! where it came from. Stored inside exports, as safetensors metadata, and as a TOML file next
//! to every export.

use super::tensor::Precision;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// The encoder trunk's architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TrunkInfo {
    /// Architecture name, e.g. `resnet-mini`.
    pub name: String,
    /// The trunk's configuration as TOML text. Text rather than a TOML table because the
    /// container's postcard encoding cannot carry self-describing values.
    pub config: String,
}

impl TrunkInfo {
    /// Describe a trunk by name and its serialisable config struct.
    pub fn from_config<C: Serialize>(
        name: impl Into<String>,
        config: &C,
    ) -> Result<Self, toml::ser::Error> {
        Ok(Self {
            name: name.into(),
            config: toml::to_string(config)?,
        })
    }

    /// The config parsed back as a TOML table.
    pub fn config_table(&self) -> Result<toml::Table, toml::de::Error> {
        self.config.parse()
    }
}

/// Provenance and usage contract of an exported encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// edgessl version that wrote the export.
    pub edgessl_version: String,
    /// Creation time, seconds since the Unix epoch.
    pub created_at_unix: u64,
    /// Self-supervised method (`byol`, `simsiam`, `directpred`, ...).
    pub method: String,
    /// Optimiser steps trained.
    pub steps: u64,
    /// Free-text description of the training data.
    pub data: String,
    /// Input height in pixels.
    pub input_height: u32,
    /// Input width in pixels.
    pub input_width: u32,
    /// Input channels (1 gray, 3 RGB).
    pub channels: u32,
    /// Per-channel mean subtracted from inputs scaled to [0, 1].
    pub mean: Vec<f64>,
    /// Per-channel standard deviation inputs are divided by after the mean.
    pub std: Vec<f64>,
    /// Dimension of the encoder's output embedding.
    pub output_dim: u32,
    /// Storage precision of the weights.
    pub precision: Precision,
    /// Number of tensors in the export.
    pub tensor_count: u64,
    /// Total number of values over all tensors (parameters and buffers such as BatchNorm
    /// running statistics).
    pub param_count: u64,
    /// The trunk architecture. Last so the TOML file lists plain keys before the table.
    pub trunk: TrunkInfo,
}

impl Default for ModelCard {
    fn default() -> Self {
        Self {
            edgessl_version: env!("CARGO_PKG_VERSION").to_owned(),
            created_at_unix: 0,
            method: String::new(),
            steps: 0,
            data: String::new(),
            input_height: 0,
            input_width: 0,
            channels: 0,
            mean: Vec::new(),
            std: Vec::new(),
            output_dim: 0,
            precision: Precision::F32,
            tensor_count: 0,
            param_count: 0,
            trunk: TrunkInfo::default(),
        }
    }
}

/// Key under which the whole card is stored as JSON in safetensors metadata.
pub const CARD_JSON_KEY: &str = "edgessl.card";

impl ModelCard {
    /// Seconds since the Unix epoch now (0 if the clock is before 1970, as on some devices
    /// without an RTC).
    pub fn now_unix() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// The card as TOML text.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }

    /// Parse a card from TOML text.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// The card as safetensors `__metadata__` strings: one key per field (strings verbatim,
    /// numbers and lists as JSON, `trunk.name`/`trunk.config` for the trunk) so Python users
    /// can read it without edgessl, plus the whole card as JSON under [`CARD_JSON_KEY`] for an
    /// exact round trip, and `format = pt` which transformers-style loaders expect.
    pub fn to_metadata(&self) -> HashMap<String, String> {
        let mut out = HashMap::new();
        let value = serde_json::to_value(self).expect("a ModelCard is always valid JSON");
        if let serde_json::Value::Object(fields) = &value {
            for (key, v) in fields {
                flatten_into(&mut out, key, v);
            }
        }
        out.insert(CARD_JSON_KEY.to_owned(), value.to_string());
        out.insert("format".to_owned(), "pt".to_owned());
        out
    }

    /// Recover a card from safetensors metadata written by [`ModelCard::to_metadata`].
    pub fn from_metadata(metadata: &HashMap<String, String>) -> Option<Result<Self, String>> {
        let json = metadata.get(CARD_JSON_KEY)?;
        Some(serde_json::from_str(json).map_err(|e| e.to_string()))
    }
}

fn flatten_into(out: &mut HashMap<String, String>, key: &str, value: &serde_json::Value) {
    match value {
        serde_json::Value::String(s) => {
            out.insert(key.to_owned(), s.clone());
        }
        serde_json::Value::Object(fields) => {
            for (k, v) in fields {
                flatten_into(out, &format!("{key}.{k}"), v);
            }
        }
        other => {
            out.insert(key.to_owned(), other.to_string());
        }
    }
}
