//! Where an encoder comes from for `eval`, `export` and `embed`: an export file, a checkpoint,
//! or a run folder (its newest valid checkpoint).

use crate::checkpoint::{CheckpointStore, PayloadKind, inspect, read_file};
use crate::export::{EncoderExport, read_safetensors};
use crate::run::RunCheckpoint;
use anyhow::{Context, bail};
use std::path::Path;

/// A trained encoder, as found on disk.
pub enum ModelSource {
    /// A training checkpoint (full state).
    Checkpoint(Box<RunCheckpoint>),
    /// An exported encoder.
    Export(Box<EncoderExport>),
}

/// Open `path`: a run folder, a checkpoint file, an `.edgessl` export or a `.safetensors` export.
pub fn open_model(path: &Path) -> anyhow::Result<ModelSource> {
    if path.is_dir() {
        let dir = if path.join("checkpoints").is_dir() {
            path.join("checkpoints")
        } else {
            path.to_path_buf()
        };
        let store = CheckpointStore::open(&dir, usize::MAX)?;
        let recovery = store.latest_valid::<RunCheckpoint>()?;
        for s in &recovery.skipped {
            eprintln!(
                "warning: skipping checkpoint of step {}: {}",
                s.step, s.error
            );
        }
        let Some(loaded) = recovery.loaded else {
            bail!("{}: no checkpoint in this folder verifies", path.display());
        };
        eprintln!("using {}", loaded.path.display());
        return Ok(ModelSource::Checkpoint(Box::new(loaded.value)));
    }
    if path.extension().is_some_and(|e| e == "safetensors") {
        let file = read_safetensors(path)?;
        let card = file.card.with_context(|| {
            format!("{}: no edgessl model card in its metadata", path.display())
        })?;
        return Ok(ModelSource::Export(Box::new(EncoderExport::new(
            card,
            file.tensors,
        )?)));
    }
    let header = inspect(path)?;
    match header.kind {
        Some(PayloadKind::Checkpoint) => Ok(ModelSource::Checkpoint(Box::new(read_file(
            path,
            PayloadKind::Checkpoint,
        )?))),
        Some(PayloadKind::EncoderExport) => {
            Ok(ModelSource::Export(Box::new(EncoderExport::load(path)?)))
        }
        None => bail!(
            "{}: unknown payload kind {} (written by a newer edgessl?)",
            path.display(),
            header.kind_code
        ),
    }
}

/// A trunk ready for inference and how its inputs are prepared.
pub struct LoadedTrunk<B: burn::tensor::backend::Backend> {
    /// The trunk (evaluation mode).
    pub trunk: crate::model::ResidualTrunk<B>,
    /// The projector, when the source has one (checkpoints; exports made with it).
    pub encoder: Option<crate::model::Encoder<B>>,
    /// Input preparation.
    pub augment: crate::data::AugmentConfig,
    /// Description for reports: method and steps.
    pub name: String,
    /// What an export made from it records.
    pub info: ExportFacts,
}

/// Facts an export records about its training.
#[derive(Debug, Clone)]
pub struct ExportFacts {
    /// Trunk shape.
    pub trunk: crate::model::TrunkConfig,
    /// Trunk name.
    pub trunk_name: String,
    /// Method label.
    pub method: String,
    /// Steps trained.
    pub steps: u64,
    /// Training data description.
    pub data: String,
}

impl ModelSource {
    /// The trunk on backend `B`'s inner (inference) backend.
    pub fn load<B: burn::tensor::backend::AutodiffBackend>(
        &self,
        device: &B::Device,
    ) -> anyhow::Result<LoadedTrunk<B::InnerBackend>> {
        use burn::module::AutodiffModule;
        match self {
            ModelSource::Checkpoint(ckpt) => {
                let c = &ckpt.config;
                let learner = crate::ssl::Learner::<B>::from_state(
                    &c.model,
                    &c.method,
                    &c.optim,
                    &ckpt.learner,
                    device,
                )?;
                let encoder = learner.online().encoder.valid();
                let steps = learner.step_count();
                Ok(LoadedTrunk {
                    trunk: encoder.trunk.clone(),
                    encoder: Some(encoder),
                    augment: ckpt.augment.clone(),
                    name: format!("{} ({} steps)", c.method.label(), steps),
                    info: ExportFacts {
                        trunk: c.model.trunk_config(),
                        trunk_name: format!("{:?}", c.model.trunk).to_lowercase(),
                        method: c.method.label(),
                        steps,
                        data: format!("{:?}", ckpt.data.data),
                    },
                })
            }
            ModelSource::Export(export) => {
                let card = &export.card;
                Ok(LoadedTrunk {
                    trunk: crate::run::encoder::load_trunk::<B::InnerBackend>(export, device)?,
                    encoder: None,
                    augment: crate::run::encoder::augment_of(card)?,
                    name: format!("{} export ({} steps)", card.method, card.steps),
                    info: ExportFacts {
                        trunk: crate::run::encoder::trunk_config_of(card)?,
                        trunk_name: card.trunk.name.clone(),
                        method: card.method.clone(),
                        steps: card.steps,
                        data: card.data.clone(),
                    },
                })
            }
        }
    }
}
