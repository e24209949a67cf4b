//! `edgessl eval`: kNN and linear-probe accuracy of a trained encoder, or of a baseline.

use super::model_source::open_model;
use super::pretrain::{TrainFlags, augment_for};
use crate::backend::{BackendKind, BackendTask, run_on};
use crate::data::{DataArgs, LabelledImages, Split, default_cache_dir};
use crate::run::evaluate::{EvalReport, evaluate};
use crate::run::features::trunk_features;
use anyhow::{Context, bail};
use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use std::path::PathBuf;

/// Baselines that need no training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Baseline {
    /// The normalised pixels themselves.
    Raw,
    /// A randomly initialised trunk of the configured shape.
    Random,
}

/// Options of `edgessl eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Encoder to evaluate: a run folder, a checkpoint, or an export (.edgessl / .safetensors).
    #[arg(long, value_name = "PATH", required_unless_present = "baseline")]
    pub model: Option<PathBuf>,
    /// Evaluate a baseline instead (its shape from the config flags).
    #[arg(long, value_enum, conflicts_with = "model")]
    pub baseline: Option<Baseline>,
    /// Config of the random-init baseline (and of raw pixels' input size).
    #[command(flatten)]
    pub train: TrainFlags,
    /// Labelled data (train split for the kNN bank and probe, test split to score).
    #[command(flatten)]
    pub data: DataArgs,
    /// Score on a held-out 20 % of the training split instead of the test split (for picking
    /// hyper-parameters without touching the test set).
    #[arg(long)]
    pub holdout: bool,
    /// Epochs of the linear probe (0 = kNN only).
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub probe_epochs: usize,
    /// At most this many training images.
    #[arg(long, value_name = "N")]
    pub train_limit: Option<usize>,
    /// At most this many test images.
    #[arg(long, value_name = "N")]
    pub test_limit: Option<usize>,
    /// Cache folder for fetched data.
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Write the report as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

struct EvalTask {
    args: EvalArgs,
}

impl BackendTask for EvalTask {
    type Output = anyhow::Result<EvalReport>;

    fn run<B: AutodiffBackend>(
        self,
        device: B::Device,
        _kind: BackendKind,
    ) -> anyhow::Result<EvalReport> {
        let args = self.args;
        let cache = args.cache.clone().unwrap_or_else(default_cache_dir);
        let config = args.train.resolve()?;
        let source = args.model.as_deref().map(open_model).transpose()?;
        let loaded = source.as_ref().map(|s| s.load::<B>(&device)).transpose()?;
        let augment = match &loaded {
            Some(l) => l.augment.clone(),
            None => augment_for(&config, None)?,
        };
        let (train, test) = if args.holdout {
            let all =
                LabelledImages::load(&args.data, Split::Train, &cache, &augment, args.train_limit)?;
            all.holdout_split(0.2, config.train.seed)
        } else {
            (
                LabelledImages::load(&args.data, Split::Train, &cache, &augment, args.train_limit)?,
                LabelledImages::load(&args.data, Split::Test, &cache, &augment, args.test_limit)?,
            )
        };
        if train.is_empty() || test.is_empty() {
            bail!("--data {:?}: the labelled splits are empty", args.data.data);
        }
        let (name, dim, train_f, test_f) = match (&loaded, args.baseline) {
            (Some(l), _) => {
                let dim = l.info.trunk.out_dim();
                (
                    l.name.clone(),
                    dim,
                    trunk_features(&l.trunk, &train, 256, &device),
                    trunk_features(&l.trunk, &test, 256, &device),
                )
            }
            (None, Some(Baseline::Raw)) => (
                "raw pixels".to_string(),
                train.sample_len(),
                train.images.clone(),
                test.images.clone(),
            ),
            (None, Some(Baseline::Random)) => {
                B::seed(&device, config.train.seed);
                let trunk = config.model.trunk_config().init::<B>(&device).valid();
                let dim = config.model.trunk_config().out_dim();
                (
                    "random-init trunk".to_string(),
                    dim,
                    trunk_features(&trunk, &train, 256, &device),
                    trunk_features(&trunk, &test, 256, &device),
                )
            }
            (None, None) => bail!("give --model PATH or --baseline raw|random"),
        };
        evaluate(
            &name,
            &train_f,
            &train.labels,
            &test_f,
            &test.labels,
            dim,
            args.probe_epochs,
            config.train.seed,
        )
    }
}

/// Evaluate and print (and write) the report.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let json = args.json.clone();
    let backend = args.train.resolve()?.train.backend;
    let report = run_on(backend, EvalTask { args })??;
    println!("{}", report.summary());
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("--json {}: cannot write", path.display()))?;
    }
    Ok(())
}
