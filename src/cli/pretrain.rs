//! `edgessl pretrain`: build a config from file + flags, train, report.

use crate::backend::{BackendKind, BackendTask, run_on};
use crate::config::TrainConfig;
use crate::data::synthetic::SyntheticViews;
use crate::model::TrunkKind;
use crate::ssl::{Learner, PredictorKind};
use crate::train::{Control, train};
use anyhow::Context;
use burn::tensor::backend::AutodiffBackend;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

/// Named methods: each sets the predictor rule and the target rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodPreset {
    /// BYOL: 2-layer MLP predictor, EMA target.
    Byol,
    /// SimSiam: 2-layer MLP predictor, target = online weights (momentum 0), stop-gradient.
    Simsiam,
    /// DirectPred: predictor set from the eigendecomposition of F, EMA target.
    Directpred,
    /// DirectCopy: predictor F/‖F‖ + εI, EMA target.
    Directcopy,
    /// BYOL with a trained linear predictor.
    Linear,
}

impl MethodPreset {
    /// Write this preset into a config.
    pub fn apply(self, config: &mut TrainConfig) {
        let m = &mut config.method;
        m.predictor = match self {
            Self::Byol | Self::Simsiam => PredictorKind::Mlp,
            Self::Directpred => PredictorKind::Directpred,
            Self::Directcopy => PredictorKind::Directcopy,
            Self::Linear => PredictorKind::Linear,
        };
        if self == Self::Simsiam {
            m.momentum = 0.0;
        }
    }
}

/// Flags that override the config file (which overrides the defaults).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TrainFlags {
    /// TOML config file (see models/ and firmware-config/ for examples).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Method preset (sets predictor and target rule).
    #[arg(long, value_enum)]
    pub method: Option<MethodPreset>,
    /// Predictor rule (overrides the method's).
    #[arg(long, value_enum)]
    pub predictor: Option<PredictorKind>,
    /// DirectPred/DirectCopy: EMA factor of F.
    #[arg(long)]
    pub rho: Option<f64>,
    /// DirectPred/DirectCopy: ε added to the predictor's eigenvalues / diagonal.
    #[arg(long)]
    pub eps: Option<f64>,
    /// DirectPred/DirectCopy: set Wp every N steps.
    #[arg(long)]
    pub freq: Option<u64>,
    /// Linear predictor: symmetrise Wp after every step.
    #[arg(long)]
    pub symmetric: bool,
    /// Trained predictor's learning rate relative to the encoder's.
    #[arg(long)]
    pub alpha_p: Option<f64>,
    /// Target EMA momentum (0 = SimSiam).
    #[arg(long)]
    pub ema: Option<f64>,
    /// Ablation: let gradients flow through the target branch.
    #[arg(long)]
    pub no_stop_gradient: bool,
    /// SGD learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// SGD momentum.
    #[arg(long)]
    pub sgd_momentum: Option<f64>,
    /// Weight decay.
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Trunk architecture.
    #[arg(long, value_enum)]
    pub trunk: Option<TrunkKind>,
    /// Trunk base width.
    #[arg(long)]
    pub width: Option<usize>,
    /// Blocks per stage (compact trunk).
    #[arg(long)]
    pub blocks: Option<usize>,
    /// Input size in pixels (square).
    #[arg(long)]
    pub image_size: Option<usize>,
    /// Input channels (1 or 3).
    #[arg(long)]
    pub in_channels: Option<usize>,
    /// Projector output width d.
    #[arg(long)]
    pub dim: Option<usize>,
    /// Frames per batch.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Steps to train.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Backend.
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
    /// CPU threads (0 = all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Log every N steps.
    #[arg(long)]
    pub log_every: Option<u64>,
}

impl TrainFlags {
    /// Defaults, then the config file, then these flags; validated.
    pub fn resolve(&self) -> anyhow::Result<TrainConfig> {
        let mut c = match &self.config {
            Some(path) => TrainConfig::load(path)?,
            None => TrainConfig::default(),
        };
        if let Some(m) = self.method {
            m.apply(&mut c);
        }
        macro_rules! set {
            ($($flag:ident => $($field:ident).+),* $(,)?) => {
                $(if let Some(v) = self.$flag { c.$($field).+ = v; })*
            };
        }
        set!(predictor => method.predictor, freq => method.freq, alpha_p => method.alpha_p,
             ema => method.momentum, lr => optim.lr, sgd_momentum => optim.momentum,
             weight_decay => optim.weight_decay, trunk => model.trunk, width => model.width,
             blocks => model.blocks, image_size => model.image_size,
             in_channels => model.in_channels, dim => model.dim, batch => train.batch,
             steps => train.steps, seed => train.seed, backend => train.backend,
             threads => train.threads, log_every => train.log_every);
        if self.rho.is_some() {
            c.method.rho = self.rho;
        }
        if self.eps.is_some() {
            c.method.eps = self.eps;
        }
        if self.symmetric {
            c.method.symmetric = true;
        }
        if self.no_stop_gradient {
            c.method.stop_gradient = false;
        }
        c.validate()?;
        if !c.method.stop_gradient && c.method.momentum > 0.0 {
            tracing::warn!(
                "no stop-gradient: the target branch is the online network itself, so the EMA momentum {} is not used",
                c.method.momentum
            );
        }
        Ok(c)
    }
}

/// Options of `edgessl pretrain`.
#[derive(Debug, clap::Args)]
pub struct PretrainArgs {
    /// Training configuration.
    #[command(flatten)]
    pub train: TrainFlags,
    /// Folder for this run's config, log, checkpoints and export.
    #[arg(long, value_name = "DIR", default_value = "runs/latest")]
    pub out: PathBuf,
}

struct PretrainTask {
    config: TrainConfig,
}

impl BackendTask for PretrainTask {
    type Output = anyhow::Result<()>;

    fn run<B: AutodiffBackend>(self, device: B::Device, kind: BackendKind) -> anyhow::Result<()> {
        let c = &self.config;
        let mut learner = Learner::<B>::new(&c.model, &c.method, &c.optim, c.train.seed, &device)?;
        let mut batches =
            SyntheticViews::new(c.model.image_size, c.model.in_channels, c.train.batch, c.train.seed);
        eprintln!(
            "pretraining {} on {kind}: {} trunk, batch {}, {} steps, synthetic data",
            c.method.label(),
            format!("{:?}", c.model.trunk).to_lowercase(),
            c.train.batch,
            c.train.steps
        );
        let bar = ProgressBar::new(c.train.steps);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed_precise}<{eta}] {msg}")
                .expect("valid template"),
        );
        let summary = train(&mut learner, &mut batches, c.train.steps, |_, info| {
            let ips = info.frames as f64 / info.elapsed.as_secs_f64().max(1e-9);
            bar.set_message(format!("loss {:.4}  {:.1} img/s", info.stats.loss, ips));
            bar.inc(1);
            Ok(Control::Continue)
        })?;
        bar.finish();
        eprintln!(
            "done: {} steps, {:.1} img/s, last loss {:.4} (mean of recent {:.4}), peak RSS {}",
            summary.steps,
            summary.frames_per_sec(),
            summary.last_loss,
            summary.recent_loss,
            crate::memory::peak_rss_bytes()
                .map_or("n/a".into(), |b| format!("{:.0} MiB", b as f64 / 1048576.0))
        );
        Ok(())
    }
}

/// Run a pretraining job.
pub fn run(args: PretrainArgs) -> anyhow::Result<()> {
    let config = args.train.resolve()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("--out {}: cannot create the folder", args.out.display()))?;
    std::fs::write(args.out.join("config.toml"), config.to_toml())
        .with_context(|| format!("--out {}: cannot write config.toml", args.out.display()))?;
    crate::runtime::set_threads(config.train.threads)?;
    run_on(config.train.backend, PretrainTask { config })?
}
