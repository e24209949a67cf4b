//! The training config: a TOML file with `[model]`, `[method]`, `[optim]` and `[train]`
//! tables, every key optional (defaults are the reference values), flags override it.

use crate::backend::BackendKind;
use crate::model::ModelConfig;
use crate::ssl::{MethodConfig, OptimConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The `[train]` table: how long and how to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Backend to run on.
    pub backend: BackendKind,
    /// CPU threads for the tensor backend (0 = all cores).
    pub threads: usize,
    /// Frames per batch (each gives two views).
    pub batch: usize,
    /// Optimiser steps to take.
    pub steps: u64,
    /// Seed of weights, data order and augmentations.
    pub seed: u64,
    /// Log loss and monitors every this many steps.
    pub log_every: u64,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            backend: BackendKind::default_compiled(),
            threads: 0,
            batch: 128,
            steps: 500,
            seed: 0,
            log_every: 25,
        }
    }
}

/// Everything a pretraining run needs to be repeated.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Network shape.
    pub model: ModelConfig,
    /// Predictor and target rule.
    pub method: MethodConfig,
    /// Optimiser.
    pub optim: OptimConfig,
    /// Run length and resources.
    pub train: RunConfig,
}

/// A config that cannot be read or is out of range. Names the file or key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys / wrong types.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key and line).
        message: String,
    },
    /// A value out of range.
    #[error("{0}")]
    Invalid(String),
}

impl TrainConfig {
    /// Read a TOML config; missing keys take their defaults.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parse TOML text.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The config as TOML (written next to every run's outputs).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a TrainConfig always serialises")
    }

    /// Check every value, naming the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.model.validate().map_err(ConfigError::Invalid)?;
        self.method.validate().map_err(ConfigError::Invalid)?;
        self.optim.validate().map_err(ConfigError::Invalid)?;
        if self.train.batch < 2 {
            return Err(ConfigError::Invalid(format!(
                "train.batch = {}: BatchNorm needs at least 2 frames per batch",
                self.train.batch
            )));
        }
        if self.train.log_every == 0 {
            return Err(ConfigError::Invalid(
                "train.log_every = 0: must be at least 1".into(),
            ));
        }
        Ok(())
    }
}
