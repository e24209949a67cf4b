//! `edgessl pretrain`: build a config from file + flags, train, report.

use crate::backend::{BackendKind, BackendTask, run_on};
use crate::checkpoint::CheckpointStore;
use crate::config::TrainConfig;
use crate::data::{
    AugmentConfig, BatchLoader, DataArgs, LabelledImages, Split, default_cache_dir, open_source,
};
use crate::eval::{KnnConfig, LabeledFeatures, knn_classify};
use crate::export::{Precision, write_safetensors};
use crate::model::TrunkKind;
use crate::monitor::{CollapseGuard, GuardDecision, LogRecord, LogWriter, MonitorSnapshot};
use crate::profile::DeviceProfile;
use crate::run::RunCheckpoint;
use crate::run::encoder::{ExportInfo, encoder_export};
use crate::run::evaluate::evaluate;
use crate::run::features::trunk_features;
use crate::ssl::{Learner, PredictorKind};
use crate::train::{Control, TrainError, train};
use anyhow::Context;
use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
    /// Device profile: a name in firmware-config/ (e.g. jetson-orin-nano, raspberry-pi-5) or a
    /// path; `none` for the built-in defaults. Default: generic-cpu when firmware-config/ is
    /// found. A config file and flags override the profile.
    #[arg(long, value_name = "NAME|PATH")]
    pub profile: Option<String>,
    /// Use the largest batch that fits the profile's memory budget (from the accounting model
    /// of `edgessl bench memory`); refuses when even batch 2 does not fit.
    #[arg(long)]
    pub fit_batch: bool,
    /// TOML config file (see models/ for examples).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Method preset (sets predictor and target rule).
    #[arg(long, value_enum)]
    pub method: Option<MethodPreset>,
    /// Predictor rule (overrides the method's).
    #[arg(long, value_enum)]
    pub predictor: Option<PredictorKind>,
    /// DirectPred/DirectCopy: EMA factor of F.
    #[arg(long, allow_negative_numbers = true)]
    pub rho: Option<f64>,
    /// DirectPred/DirectCopy: ε added to the predictor's eigenvalues / diagonal.
    #[arg(long, allow_negative_numbers = true)]
    pub eps: Option<f64>,
    /// DirectPred/DirectCopy: set Wp every N steps.
    #[arg(long)]
    pub freq: Option<u64>,
    /// Linear predictor: symmetrise Wp after every step.
    #[arg(long)]
    pub symmetric: bool,
    /// Trained predictor's learning rate relative to the encoder's.
    #[arg(long, allow_negative_numbers = true)]
    pub alpha_p: Option<f64>,
    /// Target EMA momentum (0 = SimSiam).
    #[arg(long, allow_negative_numbers = true)]
    pub ema: Option<f64>,
    /// Ablation: let gradients flow through the target branch.
    #[arg(long)]
    pub no_stop_gradient: bool,
    /// SGD learning rate.
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// SGD momentum.
    #[arg(long, allow_negative_numbers = true)]
    pub sgd_momentum: Option<f64>,
    /// Weight decay.
    #[arg(long, allow_negative_numbers = true)]
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
    /// The device profile in effect, if any.
    pub fn device_profile(&self) -> anyhow::Result<Option<DeviceProfile>> {
        match self.profile.as_deref() {
            Some("none") => Ok(None),
            Some(name) => Ok(Some(DeviceProfile::load(name)?)),
            None => Ok(DeviceProfile::load("generic-cpu").ok()),
        }
    }

    /// Defaults, then the device profile, then the config file, then these flags; validated.
    pub fn resolve(&self) -> anyhow::Result<TrainConfig> {
        let mut c = TrainConfig::default();
        let profile = self.device_profile()?;
        if let Some(profile) = &profile {
            profile.apply(&mut c)?;
        }
        if let Some(path) = &self.config {
            // Parse strictly first (unknown keys and bad types name the file), then layer only
            // the keys the file gives over the profile.
            TrainConfig::load(path)?;
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--config {}: cannot read", path.display()))?;
            let table: toml::Table =
                toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            crate::profile::apply_overrides(&mut c, &table, path)?;
        }
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
        if self.fit_batch {
            let Some(profile) = &profile else {
                anyhow::bail!("--fit-batch needs a --profile with a memory budget");
            };
            let batch = crate::bench::budget::largest_batch(
                &c,
                profile.budget_bytes(),
                crate::bench::accounting::DEFAULT_BASELINE_BYTES,
            )
            .map_err(|e| anyhow::anyhow!("--fit-batch with profile {}: {e}", profile.name))?;
            eprintln!(
                "--fit-batch: batch {batch} is the largest that fits {} MiB for {}",
                profile.meta.memory_budget_mib,
                c.method.label()
            );
            c.train.batch = batch;
        }
        if !c.method.stop_gradient && c.method.momentum > 0.0 {
            tracing::warn!(
                "no stop-gradient: the target branch is the online network itself, so the EMA momentum {} is not used",
                c.method.momentum
            );
        }
        Ok(c)
    }
}

/// Storage precision of exported weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportPrecision {
    /// 32-bit floats.
    F32,
    /// 16-bit floats (half the size; embeddings agree to cosine >= 0.999).
    F16,
}

impl From<ExportPrecision> for Precision {
    fn from(p: ExportPrecision) -> Self {
        match p {
            ExportPrecision::F32 => Precision::F32,
            ExportPrecision::F16 => Precision::F16,
        }
    }
}

/// Options of `edgessl pretrain`.
#[derive(Debug, clap::Args)]
pub struct PretrainArgs {
    /// Training configuration.
    #[command(flatten)]
    pub train: TrainFlags,
    /// Where frames come from.
    #[command(flatten)]
    pub data: DataArgs,
    /// Augmentation preset: fashion28, cifar32 or stl96 (default: from the input size).
    #[arg(long, value_name = "PRESET")]
    pub augment: Option<String>,
    /// Folder for this run's config, log, checkpoints, export and evaluation.
    #[arg(long, value_name = "DIR", default_value = "runs/latest")]
    pub out: PathBuf,
    /// Cache folder for fetched data (default: $EDGESSL_CACHE or ./.cache/edgessl).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Write a checkpoint every N steps (0 = only at the end; default: the profile's, or 100).
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<u64>,
    /// Also write a checkpoint when this many seconds have passed since the last (0 = off;
    /// default: the profile's).
    #[arg(long, value_name = "SECS")]
    pub checkpoint_secs: Option<u64>,
    /// Checkpoints to keep.
    #[arg(long, value_name = "K", default_value_t = 3)]
    pub keep: usize,
    /// Continue from the newest checkpoint in `--out` that verifies.
    #[arg(long)]
    pub resume: bool,
    /// kNN accuracy on a held split of the training data every N steps (0 = off), when the
    /// data has labels.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub knn_every: u64,
    /// Images of the training split used for the periodic kNN (80 % bank, 20 % queries).
    #[arg(long, value_name = "N", default_value_t = 2000)]
    pub knn_samples: usize,
    /// Final evaluation: epochs of the linear probe (0 = kNN only).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub probe_epochs: usize,
    /// Final evaluation: at most this many training images (kNN bank and probe training set).
    #[arg(long, value_name = "N", default_value_t = 20000)]
    pub eval_train: usize,
    /// Final evaluation: at most this many test images (default: all).
    #[arg(long, value_name = "N")]
    pub eval_test: Option<usize>,
    /// Skip the final evaluation.
    #[arg(long)]
    pub no_eval: bool,
    /// Precision of the exported encoder (default: the profile's, or f32).
    #[arg(long, value_enum)]
    pub export_precision: Option<ExportPrecision>,
    /// Stop the run (with an error) when the representation collapses.
    #[arg(long)]
    pub stop_on_collapse: bool,
    /// Record where the training time goes (data, each phase of the step, the convolution and
    /// BatchNorm kernels per layer, the observer) and write it to `op_profile.md` and
    /// `op_profile.json` in `--out`. Phase boundaries synchronise the device.
    #[arg(long)]
    pub profile_ops: bool,
    /// Set by the command-line front end when none of `--data`, `--frames`, `--stream` was
    /// given: the device profile's `frame_source` is then the data.
    #[arg(skip)]
    pub use_profile_frame_source: bool,
}

/// Writes `op_profile.md` and `op_profile.json` into the run folder and prints the phase table.
fn write_op_profile(
    out: &Path,
    method: &str,
    backend: BackendKind,
    p: &crate::step_profile::StepProfile,
) -> anyhow::Result<()> {
    use crate::bench::op_profile;
    let title = format!("{method} on {backend}");
    let md = out.join("op_profile.md");
    let text = format!(
        "{}\n- Kernels are edgessl's fast ops, timed inside their phase; `other` is the rest of \
         the phase (burn's own ops, autodiff bookkeeping). No sgemm roof is measured here: \
         `edgessl bench throughput --profile-ops` gives the fraction of the roof.\n",
        op_profile::render(&title, p, op_profile::Roofs::default())
    );
    crate::checkpoint::atomic::write_bytes_atomic(&md, text.as_bytes())
        .with_context(|| format!("cannot write {}", md.display()))?;
    let json = out.join("op_profile.json");
    crate::checkpoint::atomic::write_bytes_atomic(
        &json,
        serde_json::to_string_pretty(p)?.as_bytes(),
    )
    .with_context(|| format!("cannot write {}", json.display()))?;
    eprintln!(
        "{}\nop profile: {} (per layer: {})",
        op_profile::phase_table(p, op_profile::Roofs::default()),
        md.display(),
        json.display()
    );
    Ok(())
}

/// The augmentation for a config: the named preset, or the one matching the input.
pub fn augment_for(config: &TrainConfig, preset: Option<&str>) -> anyhow::Result<AugmentConfig> {
    let size = config.model.image_size;
    let base = match preset {
        Some(name) => AugmentConfig::preset(name)?,
        None if size <= 28 => AugmentConfig::fashion28(),
        None if size <= 32 => AugmentConfig::cifar32(),
        None => AugmentConfig::stl96(),
    };
    let augment = base.with_channels(config.model.in_channels).with_size(size);
    augment.validate()?;
    Ok(augment)
}

struct PretrainTask {
    config: TrainConfig,
    checkpoint_every: u64,
    checkpoint_secs: u64,
    precision: Precision,
    args: PretrainArgs,
    cache: PathBuf,
    resume: Option<RunCheckpoint>,
}

/// Periodic kNN on a held split of the training data.
struct KnnProbe {
    bank: LabelledImages,
    queries: LabelledImages,
}

impl KnnProbe {
    fn accuracy<B: AutodiffBackend>(&self, learner: &Learner<B>) -> anyhow::Result<f64> {
        let trunk = learner.online().encoder.trunk.valid();
        let device = learner.device();
        let dim = learner.model_config().trunk_config().out_dim();
        let bank = trunk_features(&trunk, &self.bank, 256, device);
        let queries = trunk_features(&trunk, &self.queries, 256, device);
        let tr = LabeledFeatures::new(&bank, &self.bank.labels, dim, "kNN bank")?;
        let te = LabeledFeatures::new(&queries, &self.queries.labels, dim, "kNN queries")?;
        Ok(knn_classify(tr, te, &KnnConfig::default())?.top1)
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / 1048576.0)
}

impl BackendTask for PretrainTask {
    type Output = anyhow::Result<()>;

    fn run<B: AutodiffBackend>(self, device: B::Device, kind: BackendKind) -> anyhow::Result<()> {
        let Self {
            config: c,
            args,
            cache,
            resume,
            checkpoint_every,
            checkpoint_secs,
            precision,
        } = self;
        let out = &args.out;
        let augment = match &resume {
            Some(ckpt) => ckpt.augment.clone(),
            None => augment_for(&c, args.augment.as_deref())?,
        };

        // The learner: fresh, or exactly where the checkpoint left off.
        let (mut learner, mut frames_seen, mut train_secs, replay_restore) = match resume {
            Some(ckpt) => {
                let learner = Learner::<B>::from_state(
                    &c.model,
                    &c.method,
                    &c.optim,
                    &ckpt.learner,
                    &device,
                )?;
                (learner, ckpt.frames_seen, ckpt.train_secs, ckpt.replay)
            }
            None => (
                Learner::<B>::new(&c.model, &c.method, &c.optim, c.train.seed, &device)?,
                0,
                0.0,
                None,
            ),
        };
        let start_step = learner.step_count();

        let source = open_source(&args.data, &cache)?;
        let data_description = source.describe();
        let labelled = source.classes().is_some() && !args.data.is_stream();
        let replay = args.data.replay_config().map(|mut r| {
            r.restore = replay_restore;
            r
        });
        let mut loader = BatchLoader::new(
            source,
            augment.clone(),
            c.train.batch,
            c.train.seed,
            start_step,
            replay,
        )?;
        let knn = if labelled && args.knn_every > 0 {
            let images = LabelledImages::load(
                &args.data,
                Split::Train,
                &cache,
                &augment,
                Some(args.knn_samples),
            )?;
            let (bank, queries) = images.holdout_split(0.2, c.train.seed);
            Some(KnnProbe { bank, queries })
        } else {
            None
        };

        eprintln!(
            "pretraining {} on {kind} ({} threads, heap {}, Winograd {}): {} trunk {}x{}x{}, batch {}, steps {}..{}",
            c.method.label(),
            rayon::current_num_threads(),
            crate::runtime::heap_policy(),
            if crate::ops::winograd_in_use() {
                "on"
            } else {
                "off"
            },
            format!("{:?}", c.model.trunk).to_lowercase(),
            c.model.in_channels,
            c.model.image_size,
            c.model.image_size,
            c.train.batch,
            start_step,
            c.train.steps
        );
        eprintln!("data: {}", loader.describe());

        let store = CheckpointStore::open(out.join("checkpoints"), args.keep.max(1))?;
        let mut log = if start_step > 0 {
            LogWriter::append(out.join("log.jsonl"))?
        } else {
            LogWriter::create(out.join("log.jsonl"))?
        };
        let interrupted = Arc::new(AtomicBool::new(false));
        {
            let flag = interrupted.clone();
            // A second Ctrl-C while the checkpoint is written still waits for it: the flag is
            // only read between steps.
            let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
        }
        let checkpoint = |learner: &Learner<B>,
                          loader: &BatchLoader,
                          frames: u64,
                          secs: f64|
         -> anyhow::Result<PathBuf> {
            let payload = RunCheckpoint {
                config: c.clone(),
                data: args.data.clone(),
                augment: augment.clone(),
                learner: learner.state(),
                replay: loader.replay_snapshot(),
                frames_seen: frames,
                train_secs: secs,
            };
            Ok(store.save(learner.step_count(), &payload)?)
        };

        let bar = ProgressBar::new(c.train.steps);
        bar.set_position(start_step);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed_precise}<{eta}] {msg}")
                .expect("valid template"),
        );
        // indicatif drops `println` when its bar is hidden (stderr not a terminal): say it anyway.
        let say = |line: String| {
            if bar.is_hidden() {
                eprintln!("{line}")
            } else {
                bar.println(line)
            }
        };
        let steps_per_epoch = loader.steps_per_epoch();
        let mut guard = CollapseGuard::new(0.1, 3);
        let mut window = (0.0f64, 0u64, 0usize, Duration::ZERO); // loss sum, steps, frames, time
        let mut last_ckpt = (start_step, Instant::now());
        let run_start = Instant::now();
        let mut failure: Option<anyhow::Error> = None;
        let base_frames = frames_seen;
        if args.profile_ops {
            crate::step_profile::start();
        }
        let summary = train(
            &mut learner,
            &mut loader,
            c.train.steps,
            |learner, loader, info| {
                let step = learner.step_count();
                window.0 += info.stats.loss;
                window.1 += 1;
                window.2 += info.frames;
                window.3 += info.elapsed;
                let ips = window.2 as f64 / window.3.as_secs_f64().max(1e-9);
                bar.set_message(format!("loss {:.4}  {:.1} img/s", info.stats.loss, ips));
                bar.set_position(step);
                let mut stop = interrupted.load(Ordering::SeqCst);

                if step % c.train.log_every == 0 || step == c.train.steps {
                    let mut record = LogRecord {
                        step,
                        epoch: steps_per_epoch.map_or(0, |e| step / e.max(1)),
                        loss: window.0 / window.1.max(1) as f64,
                        images_per_sec: ips,
                        lr: c.optim.lr,
                        wall_secs: train_secs + run_start.elapsed().as_secs_f64(),
                        ..Default::default()
                    };
                    let wp = learner.predictor_matrix();
                    let z = learner.last_outputs();
                    let d = c.model.dim;
                    match MonitorSnapshot::measure(
                        &learner.correlation.matrix,
                        wp.as_deref(),
                        d,
                        d.min(16),
                        Some((z, z.len() / d)),
                    ) {
                        Ok(snapshot) => snapshot.fill(
                            &mut record,
                            step % (c.train.log_every * 10) == 0 || step == c.train.steps,
                        ),
                        Err(e) => tracing::warn!("monitors skipped at step {step}: {e}"),
                    }
                    if let Some(knn) = knn
                        .as_ref()
                        .filter(|_| step.is_multiple_of(args.knn_every) || step == c.train.steps)
                    {
                        match knn.accuracy(learner) {
                            Ok(acc) => record.knn_top1 = Some(acc),
                            Err(e) => tracing::warn!("kNN skipped at step {step}: {e}"),
                        }
                    }
                    match guard.observe_record(&record) {
                        GuardDecision::Continue => {}
                        GuardDecision::Warn(msg) => say(format!("warning: {msg}")),
                        GuardDecision::Stop(msg) if args.stop_on_collapse => {
                            failure = Some(anyhow::anyhow!("stopped at step {step}: {msg}"));
                            stop = true;
                        }
                        GuardDecision::Stop(msg) => say(format!(
                            "warning: {msg} (--stop-on-collapse would stop here)"
                        )),
                    }
                    let knn_text = record
                        .knn_top1
                        .map_or(String::new(), |k| format!(", kNN {:.2} %", 100.0 * k));
                    say(format!(
                        "step {step}: loss {:.4}, {:.1} img/s, collapse std {:.3}{}{knn_text}",
                        record.loss,
                        ips,
                        record.collapse_std.unwrap_or(f64::NAN),
                        record
                            .alignment_mean
                            .map_or(String::new(), |a| format!(", alignment {a:.3}")),
                    ));
                    log.write(&record)
                        .map_err(|e| TrainError::Stopped(format!("{e:#}")))?;
                    window = (0.0, 0, 0, Duration::ZERO);
                }

                let by_steps = checkpoint_every > 0 && step - last_ckpt.0 >= checkpoint_every;
                let by_time =
                    checkpoint_secs > 0 && last_ckpt.1.elapsed().as_secs() >= checkpoint_secs;
                if by_steps || by_time || stop {
                    let frames = base_frames + (step - start_step) * c.train.batch as u64;
                    checkpoint(
                        learner,
                        loader,
                        frames,
                        train_secs + run_start.elapsed().as_secs_f64(),
                    )
                    .map_err(|e| {
                        TrainError::Stopped(format!("checkpoint at step {step} failed: {e:#}"))
                    })?;
                    last_ckpt = (step, Instant::now());
                }
                Ok(if stop {
                    Control::Stop
                } else {
                    Control::Continue
                })
            },
        )?;
        bar.finish_and_clear();
        if let Some(p) = crate::step_profile::finish::<B>(learner.device()) {
            write_op_profile(out, &c.method.label(), kind, &p)?;
        }
        frames_seen += summary.frames;
        train_secs += summary.elapsed.as_secs_f64();
        if let Some(err) = failure {
            return Err(err);
        }
        let final_ckpt =
            if learner.step_count() != last_ckpt.0 || learner.step_count() == start_step {
                checkpoint(&learner, &loader, frames_seen, train_secs)?
            } else {
                store.path_for(learner.step_count())
            };
        let peak = crate::memory::peak_rss_bytes();
        eprintln!(
            "trained {} steps ({} this run, {:.1} img/s, {:.1} min), loss {:.4} (recent mean {:.4}), peak RSS {}",
            learner.step_count(),
            summary.steps,
            summary.frames_per_sec(),
            summary.elapsed.as_secs_f64() / 60.0,
            summary.last_loss,
            summary.recent_loss,
            peak.map_or("n/a".into(), mib)
        );
        crate::run::TrainingSummary {
            method: c.method.label(),
            backend: kind,
            batch: c.train.batch,
            steps: learner.step_count(),
            steps_this_run: summary.steps,
            frames_this_run: summary.frames,
            train_secs_this_run: summary.elapsed.as_secs_f64(),
            images_per_sec: summary.frames_per_sec(),
            peak_rss_bytes: peak,
            heap: Some(crate::runtime::heap_policy()),
            winograd: Some(crate::ops::winograd_in_use()),
            last_loss: summary.last_loss,
            recent_loss: summary.recent_loss,
        }
        .save(&out.join("summary.json"))?;
        if interrupted.load(Ordering::SeqCst) {
            eprintln!(
                "interrupted: checkpoint {} written; continue with --resume",
                final_ckpt.display()
            );
            return Ok(());
        }

        // Export the trunk (f32 or f16) in edgessl's format and as safetensors.
        let encoder = learner.online().encoder.valid();
        let trunk_config = c.model.trunk_config();
        let info = ExportInfo {
            trunk: &trunk_config,
            trunk_name: &format!("{:?}", c.model.trunk).to_lowercase(),
            augment: &augment,
            method: c.method.label(),
            steps: learner.step_count(),
            data: data_description.clone(),
        };
        let export = encoder_export(&encoder, false, &info, precision)?;
        let export_path = out.join("encoder.edgessl");
        export.save(&export_path)?;
        let st_path = out.join("encoder.safetensors");
        write_safetensors(&st_path, &export)?;

        // Evaluate the frozen trunk when the data has labels.
        let mut eval_path = None;
        if labelled && !args.no_eval {
            eprintln!(
                "evaluating: kNN and a {}-epoch linear probe on frozen features",
                args.probe_epochs
            );
            let train_images = LabelledImages::load(
                &args.data,
                Split::Train,
                &cache,
                &augment,
                Some(args.eval_train),
            )?;
            let test_images =
                LabelledImages::load(&args.data, Split::Test, &cache, &augment, args.eval_test)?;
            let dim = trunk_config.out_dim();
            let inner = learner.online().encoder.trunk.valid();
            let train_f = trunk_features(&inner, &train_images, 256, &device);
            let test_f = trunk_features(&inner, &test_images, 256, &device);
            let report = evaluate(
                &c.method.label(),
                &train_f,
                &train_images.labels,
                &test_f,
                &test_images.labels,
                dim,
                args.probe_epochs,
                c.train.seed,
            )?;
            eprintln!("{}", report.summary());
            let path = out.join("eval.json");
            std::fs::write(&path, serde_json::to_string_pretty(&report)?)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eval_path = Some(path);
        }
        eprintln!("files:");
        eprintln!("  config      {}", out.join("config.toml").display());
        eprintln!("  log         {}", out.join("log.jsonl").display());
        eprintln!("  summary     {}", out.join("summary.json").display());
        eprintln!("  checkpoint  {}", final_ckpt.display());
        eprintln!("  encoder     {} (+ .card.toml)", export_path.display());
        eprintln!("  safetensors {}", st_path.display());
        if let Some(p) = eval_path {
            eprintln!("  evaluation  {}", p.display());
        }
        Ok(())
    }
}

/// Run a pretraining job.
pub fn run(mut args: PretrainArgs) -> anyhow::Result<()> {
    let cache = args.cache.clone().unwrap_or_else(default_cache_dir);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("--out {}: cannot create the folder", args.out.display()))?;
    let mut config = args.train.resolve()?;
    let mut resume = None;
    if args.resume {
        let store = CheckpointStore::open(args.out.join("checkpoints"), args.keep.max(1))?;
        let recovery = store.latest_valid::<RunCheckpoint>()?;
        for skipped in &recovery.skipped {
            eprintln!(
                "warning: skipping checkpoint of step {}: {}",
                skipped.step, skipped.error
            );
        }
        match recovery.loaded {
            Some(loaded) => {
                eprintln!(
                    "resuming from {} (step {})",
                    loaded.path.display(),
                    loaded.step
                );
                let ckpt: RunCheckpoint = loaded.value;
                if args.use_profile_frame_source {
                    // No data flag typed: continue on the frames the run was trained on.
                    args.data = ckpt.data.clone();
                    args.use_profile_frame_source = false;
                }
                // The checkpoint's config is the run's; only its length can be extended.
                let steps = args.train.steps.unwrap_or(ckpt.config.train.steps);
                config = ckpt.config.clone();
                config.train.steps = steps;
                resume = Some(ckpt);
            }
            None => eprintln!(
                "--resume: no checkpoint in {} verifies; starting fresh",
                args.out.display()
            ),
        }
    }
    if args.use_profile_frame_source
        && let Some(p) = args.train.device_profile()?
    {
        eprintln!(
            "frames from profile {}: {} (give --data, --frames or --stream to change)",
            p.name, p.meta.frame_source
        );
        p.meta
            .frame_source
            .apply_to(&mut args.data)
            .with_context(|| format!("profile {}", p.path.display()))?;
    }
    std::fs::write(args.out.join("config.toml"), config.to_toml())
        .with_context(|| format!("--out {}: cannot write config.toml", args.out.display()))?;
    crate::runtime::set_threads(config.train.threads)?;
    let profile = args.train.device_profile()?;
    if let Some(p) = &profile {
        eprintln!("profile {} ({})", p.name, p.path.display());
    }
    let meta = profile.as_ref().map(|p| &p.meta);
    let checkpoint_every = args
        .checkpoint_every
        .or(meta.and_then(|m| m.checkpoint_every_steps))
        .unwrap_or(100);
    let checkpoint_secs = args
        .checkpoint_secs
        .or(meta.and_then(|m| m.checkpoint_every_secs))
        .unwrap_or(0);
    let precision = match (args.export_precision, meta.map(|m| m.export_precision)) {
        (Some(p), _) => p.into(),
        (None, Some(crate::profile::ExportPrecision::F16)) => Precision::F16,
        _ => Precision::F32,
    };
    let backend = config.train.backend;
    run_on(
        backend,
        PretrainTask {
            config,
            args,
            cache,
            resume,
            checkpoint_every,
            checkpoint_secs,
            precision,
        },
    )?
}
