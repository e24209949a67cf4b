//! One memory measurement in a fresh process.
//!
//! VmHWM is a process-wide high-water mark that never goes down, so measuring several methods
//! in one process would report the largest so far. The parent re-executes its own binary
//! (`std::env::current_exe()`) with the hidden `bench memory-child` subcommand once per method;
//! the child builds a learner, runs K real steps on synthetic views and prints one JSON line.

use crate::backend::{BackendKind, BackendTask, run_on};
use crate::config::TrainConfig;
use crate::data::synthetic::SyntheticViews;
use crate::memory::{current_rss_bytes, peak_rss_bytes};
use crate::ssl::Learner;
use anyhow::{Context, bail};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use std::process::Command;
use std::time::Instant;

/// What a child reports (one JSON object on stdout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildReport {
    /// Method label (`byol`, `directpred`, ...).
    pub method: String,
    /// Backend the steps ran on.
    pub backend: BackendKind,
    /// Frames per batch.
    pub batch: usize,
    /// Steps taken.
    pub steps: u64,
    /// VmHWM when the child started, before any model or data existed (the process baseline).
    pub baseline_hwm_bytes: u64,
    /// VmHWM after the learner was built and the first batch generated, before the first step.
    pub before_step_hwm_bytes: u64,
    /// VmHWM after the K steps: the measured peak.
    pub peak_hwm_bytes: u64,
    /// VmRSS after the K steps (what the process still holds; allocator caches included).
    pub rss_after_bytes: u64,
    /// Parameters of the online network as burn counts them (BN statistics included).
    pub online_params: u64,
    /// Mean seconds per step.
    pub secs_per_step: f64,
    /// Loss of the last step (a sanity check that real training happened).
    pub last_loss: f64,
}

struct ChildTask {
    config: TrainConfig,
    baseline: u64,
}

impl BackendTask for ChildTask {
    type Output = anyhow::Result<ChildReport>;

    fn run<B: AutodiffBackend>(self, device: B::Device, kind: BackendKind) -> Self::Output {
        use burn::module::Module;
        let c = &self.config;
        let mut learner = Learner::<B>::new(&c.model, &c.method, &c.optim, c.train.seed, &device)?;
        let mut views = SyntheticViews::new(
            c.model.image_size,
            c.model.in_channels,
            c.train.batch,
            c.train.seed,
        );
        let mut batch = views.next_views()?;
        let before_step = peak_rss_bytes().unwrap_or(0);
        let start = Instant::now();
        let mut last_loss = f64::NAN;
        for step in 0..c.train.steps {
            if step > 0 {
                batch = views.next_views()?;
            }
            last_loss = learner.step(&batch)?.loss;
        }
        let secs = start.elapsed().as_secs_f64();
        Ok(ChildReport {
            method: c.method.label(),
            backend: kind,
            batch: c.train.batch,
            steps: c.train.steps,
            baseline_hwm_bytes: self.baseline,
            before_step_hwm_bytes: before_step,
            peak_hwm_bytes: peak_rss_bytes().unwrap_or(0),
            rss_after_bytes: current_rss_bytes().unwrap_or(0),
            online_params: learner.online().num_params() as u64,
            secs_per_step: secs / c.train.steps.max(1) as f64,
            last_loss,
        })
    }
}

/// Run the child's measurement in this process (the `bench memory-child` subcommand).
/// `baseline_hwm` is VmHWM read as early as possible in `main`.
pub fn run_child(config: TrainConfig, baseline_hwm: u64) -> anyhow::Result<ChildReport> {
    config.validate()?;
    if config.train.steps == 0 {
        bail!("--steps 0: the memory child needs at least one step");
    }
    crate::runtime::set_threads(config.train.threads)?;
    run_on(
        config.train.backend,
        ChildTask {
            config,
            baseline: baseline_hwm,
        },
    )?
}

/// The command-line arguments that make a child reproduce `config` exactly: the whole
/// config as one JSON argument, so no setting can be lost in translation to flags.
pub fn child_args(config: &TrainConfig) -> anyhow::Result<Vec<String>> {
    let json = serde_json::to_string(config).context("cannot serialise the child's config")?;
    Ok(vec![
        "bench".into(),
        "memory-child".into(),
        "--config-json".into(),
        json,
    ])
}

/// The heap policy memory children run with: `release` (no retained free memory, so the
/// peak is the model's, and heap fragmentation does not differ between methods) unless
/// `--heap`/`EDGESSL_HEAP` was given explicitly, or `release` whenever an mmap threshold is set
/// (so edgessl's own tuning does not override it).
///
/// Measured at batch 128: with `retain`, DirectPred peaked at 386 MiB against BYOL's 325 MiB,
/// from fragmentation alone (the accounting predicts 321 / 324); with `release`, 321 / 327.
pub fn child_heap_policy(mmap_threshold: Option<u64>) -> crate::runtime::HeapPolicy {
    use crate::runtime::HeapPolicy;
    if mmap_threshold.is_some() {
        return HeapPolicy::Release;
    }
    std::env::var("EDGESSL_HEAP")
        .ok()
        .and_then(|v| <HeapPolicy as clap::ValueEnum>::from_str(&v, false).ok())
        .unwrap_or(HeapPolicy::Release)
}

/// Re-execute this binary as a memory child for `config` and parse its report.
/// `mmap_threshold` (glibc) is passed to the child as `MALLOC_MMAP_THRESHOLD_`; the heap
/// policy is [`child_heap_policy`].
pub fn spawn_child(
    config: &TrainConfig,
    mmap_threshold: Option<u64>,
) -> anyhow::Result<ChildReport> {
    let exe = std::env::current_exe().context("cannot locate the running edgessl binary")?;
    spawn_child_with(&exe, config, mmap_threshold)
}

/// [`spawn_child`] with an explicit binary (tests pass `CARGO_BIN_EXE_edgessl`).
pub fn spawn_child_with(
    exe: &std::path::Path,
    config: &TrainConfig,
    mmap_threshold: Option<u64>,
) -> anyhow::Result<ChildReport> {
    let mut cmd = Command::new(exe);
    cmd.args(child_args(config)?);
    if let Some(t) = mmap_threshold {
        cmd.env("MALLOC_MMAP_THRESHOLD_", t.to_string());
    }
    cmd.env("EDGESSL_HEAP", child_heap_policy(mmap_threshold).name());
    let output = cmd
        .output()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    if !output.status.success() {
        bail!(
            "memory child for {} (batch {}) failed with {}: {}",
            config.method.label(),
            config.train.batch,
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .with_context(|| {
            format!(
                "memory child for {} printed no JSON report: {stdout:?}",
                config.method.label()
            )
        })?;
    serde_json::from_str(line).with_context(|| {
        format!(
            "memory child for {}: bad JSON report {line:?}",
            config.method.label()
        )
    })
}
