//! `edgessl export`: the trained encoder as a standalone file (postcard f32/f16 or safetensors).

use super::model_source::open_model;
use super::pretrain::ExportPrecision;
use crate::backend::{BackendKind, BackendTask, run_on};
use crate::export::write_safetensors;
use crate::run::encoder::{ExportInfo, encoder_export};
use anyhow::bail;
use burn::tensor::backend::AutodiffBackend;
use std::path::PathBuf;

/// Options of `edgessl export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// A run folder (newest valid checkpoint), a checkpoint file, or an export to convert.
    #[arg(value_name = "FROM")]
    pub from: PathBuf,
    /// Output file: `.safetensors` (PyTorch names) or anything else for edgessl's format.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Weight precision.
    #[arg(long, value_enum, default_value = "f32")]
    pub precision: ExportPrecision,
    /// Include the projector head (tensors `projector.*`).
    #[arg(long)]
    pub with_projector: bool,
    /// Backend used to load a checkpoint.
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
}

struct ExportTask {
    args: ExportArgs,
}

impl BackendTask for ExportTask {
    type Output = anyhow::Result<()>;

    fn run<B: AutodiffBackend>(self, device: B::Device, _kind: BackendKind) -> anyhow::Result<()> {
        let args = self.args;
        let loaded = open_model(&args.from)?.load::<B>(&device)?;
        let encoder = match (&loaded.encoder, args.with_projector) {
            (Some(e), _) => e.clone(),
            (None, true) => bail!(
                "{}: this export has no projector; export from a checkpoint",
                args.from.display()
            ),
            (None, false) => crate::model::Encoder {
                trunk: loaded.trunk.clone(),
                projector: crate::model::MlpHeadConfig::new(1, 1, 1).init(&device),
            },
        };
        let f = &loaded.info;
        let info = ExportInfo {
            trunk: &f.trunk,
            trunk_name: &f.trunk_name,
            augment: &loaded.augment,
            method: f.method.clone(),
            steps: f.steps,
            data: f.data.clone(),
        };
        let export = encoder_export(&encoder, args.with_projector, &info, args.precision.into())?;
        if args.out.extension().is_some_and(|e| e == "safetensors") {
            write_safetensors(&args.out, &export)?;
        } else {
            export.save(&args.out)?;
        }
        eprintln!(
            "wrote {} ({} tensors, {} values, {})",
            args.out.display(),
            export.tensors.len(),
            export.param_count(),
            export.card.precision.as_str()
        );
        Ok(())
    }
}

/// Write the export.
pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let backend = args.backend.unwrap_or_else(BackendKind::default_compiled);
    run_on(backend, ExportTask { args })?
}
