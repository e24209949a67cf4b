//! `bench throughput`: training images (frames) per second per method and backend, the
//! achieved GFLOP/s from the FLOP count, and the fraction of an sgemm roof measured in the
//! same run.

use super::flops::StepFlops;
use super::roof::{Roof, sgemm_roof};
use super::table::Table;
use crate::backend::{BackendKind, BackendTask, run_on};
use crate::config::TrainConfig;
use crate::data::synthetic::SyntheticViews;
use crate::ssl::Learner;
use crate::step_profile::{self, StepProfile};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Distinct synthetic batches cycled through, generated before timing starts so the data path
/// is not in the measurement.
const BATCH_POOL: usize = 4;

/// One method on one backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThroughputRow {
    /// Method label.
    pub method: String,
    /// Backend.
    pub backend: BackendKind,
    /// Frames per batch (each gives two views).
    pub batch: usize,
    /// Timed steps (after the warm-up).
    pub steps: u64,
    /// Warm-up steps, not timed.
    pub warmup: u64,
    /// Seconds of the timed steps.
    pub secs: f64,
    /// Frames per second (the "img/s" of REFERENCE.md: a frame is one image, two views).
    pub images_per_sec: f64,
    /// The FLOP count of one step.
    pub flops: StepFlops,
    /// `images_per_sec × flops_per_frame / 1e9`.
    pub achieved_gflops: f64,
    /// Where the timed steps' time went (with `--profile-ops`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<StepProfile>,
}

/// A backend's roof and its rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendThroughput {
    /// The backend.
    pub backend: BackendKind,
    /// sgemm roof measured with this backend's matmul.
    pub roof: Roof,
    /// One row per method.
    pub rows: Vec<ThroughputRow>,
}

/// What to measure on one backend.
pub struct ThroughputTask {
    /// One config per method (same shape and batch); `train.backend` is ignored.
    pub configs: Vec<TrainConfig>,
    /// Untimed steps first (allocator warm-up, first-touch of pages).
    pub warmup: u64,
    /// Timed steps.
    pub steps: u64,
    /// Size of the roof's square matrices.
    pub roof_n: usize,
    /// Record a [`StepProfile`] of the timed steps.
    pub profile_ops: bool,
}

impl BackendTask for ThroughputTask {
    type Output = anyhow::Result<BackendThroughput>;

    fn run<B: AutodiffBackend>(self, device: B::Device, kind: BackendKind) -> Self::Output {
        // Measured before and after the methods, the best kept: on a shared machine one
        // short measurement can land in a slow moment and put the steps above "the roof".
        let roof_before = sgemm_roof::<B::InnerBackend>(self.roof_n, 5, &device);
        let mut rows = Vec::with_capacity(self.configs.len());
        for c in &self.configs {
            let mut learner =
                Learner::<B>::new(&c.model, &c.method, &c.optim, c.train.seed, &device)?;
            let mut views = SyntheticViews::new(
                c.model.image_size,
                c.model.in_channels,
                c.train.batch,
                c.train.seed,
            );
            let pool = (0..BATCH_POOL)
                .map(|_| views.next_views())
                .collect::<Result<Vec<_>, _>>()?;
            let mut batches = pool.iter().cycle();
            for _ in 0..self.warmup {
                learner.step(batches.next().expect("cycle is endless"))?;
            }
            if self.profile_ops {
                step_profile::start();
            }
            let start = Instant::now();
            for _ in 0..self.steps {
                learner.step(batches.next().expect("cycle is endless"))?;
            }
            let secs = start.elapsed().as_secs_f64();
            let profile = step_profile::finish::<B>(&device);
            let flops = StepFlops::new(&c.model, &c.method);
            let images_per_sec = (self.steps as f64 * c.train.batch as f64) / secs.max(1e-9);
            rows.push(ThroughputRow {
                method: c.method.label(),
                backend: kind,
                batch: c.train.batch,
                steps: self.steps,
                warmup: self.warmup,
                secs,
                images_per_sec,
                achieved_gflops: images_per_sec * flops.flops_per_frame / 1e9,
                flops,
                profile,
            });
        }
        let roof = roof_before.merge(sgemm_roof::<B::InnerBackend>(self.roof_n, 5, &device));
        Ok(BackendThroughput {
            backend: kind,
            roof,
            rows,
        })
    }
}

/// Measure every config on `backend`.
pub fn measure(backend: BackendKind, task: ThroughputTask) -> anyhow::Result<BackendThroughput> {
    run_on(backend, task)?
}

/// The table: one row per method and backend, with the fraction of the best roof in the run
/// (the machine's sgemm ceiling) and of the backend's own roof.
pub fn throughput_table(results: &[BackendThroughput], pytorch: &[(String, f64)]) -> Table {
    let best_roof = results.iter().map(|r| r.roof.gflops).fold(0.0, f64::max);
    let mut t = Table::new([
        "method",
        "backend",
        "batch",
        "img/s",
        "GFLOP/frame",
        "GFLOP/s",
        "roof GFLOP/s",
        "of backend roof",
        "of best roof",
        "vs PyTorch",
    ]);
    for r in results {
        for row in &r.rows {
            let torch = pytorch
                .iter()
                .find(|(m, _)| *m == row.method)
                .map(|(_, ips)| *ips);
            t.row([
                row.method.clone(),
                row.backend.to_string(),
                row.batch.to_string(),
                format!("{:.1}", row.images_per_sec),
                format!("{:.3}", row.flops.flops_per_frame / 1e9),
                format!("{:.1}", row.achieved_gflops),
                format!("{:.1}", r.roof.gflops),
                format!(
                    "{:.0} %",
                    100.0 * row.achieved_gflops / r.roof.gflops.max(1e-9)
                ),
                format!("{:.0} %", 100.0 * row.achieved_gflops / best_roof.max(1e-9)),
                torch.map_or("-".into(), |ips| {
                    format!("{:.2}x", row.images_per_sec / ips)
                }),
            ]);
        }
    }
    t
}
