//! `bench throughput`: training images (frames) per second per method and backend, the
//! achieved GFLOP/s from the FLOP count, and the fraction of an sgemm roof measured in the
//! same run.

use super::flops::StepFlops;
use super::roof::{Roof, Sgemm, sgemm_roof};
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
    /// Median GFLOP/s of one roof-sized sgemm run after each timed step: the machine's
    /// speed while the steps ran, where the roof's best-of-10 catches its fastest moment.
    /// 0 in results written before it was measured.
    #[serde(default)]
    pub roof_during_gflops: f64,
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
            let sgemm = Sgemm::<B::InnerBackend>::new(self.roof_n, &device);
            if self.profile_ops {
                step_profile::start();
            }
            // Each step is timed alone and followed by one sgemm, so the steps and the
            // machine's sgemm speed are sampled over the same minutes.
            let (mut secs, mut during) = (0.0, Vec::with_capacity(self.steps as usize));
            for _ in 0..self.steps {
                let start = Instant::now();
                learner.step(batches.next().expect("cycle is endless"))?;
                let _ = B::sync(&device);
                secs += start.elapsed().as_secs_f64();
                step_profile::close_phase::<B>(&device);
                during.push(sgemm.flops() / sgemm.secs().max(1e-12) / 1e9);
            }
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
                roof_during_gflops: median(&during).unwrap_or(0.0),
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
        "GFLOP/s done",
        "roof GFLOP/s",
        "of backend roof",
        "of best roof",
        "sgemm GFLOP/s during steps",
        "of it",
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
                format!(
                    "{:.1}",
                    row.images_per_sec * row.flops.arithmetic_per_frame() / 1e9
                ),
                format!("{:.1}", r.roof.gflops),
                format!(
                    "{:.0} %",
                    100.0 * row.achieved_gflops / r.roof.gflops.max(1e-9)
                ),
                format!("{:.0} %", 100.0 * row.achieved_gflops / best_roof.max(1e-9)),
                during(row, |d| format!("{d:.1}")),
                of_sgemm_during(row),
                torch.map_or("-".into(), |ips| {
                    format!("{:.2}x", row.images_per_sec / ips)
                }),
            ]);
        }
    }
    t
}

/// `f` of the row's sgemm speed during its steps, `-` where it was not measured.
fn during(row: &ThroughputRow, f: impl Fn(f64) -> String) -> String {
    if row.roof_during_gflops > 0.0 {
        f(row.roof_during_gflops)
    } else {
        "-".into()
    }
}

/// The row's achieved GFLOP/s as a percentage of the sgemm speed during its steps.
fn of_sgemm_during(row: &ThroughputRow) -> String {
    during(row, |d| format!("{:.0} %", 100.0 * row.achieved_gflops / d))
}

/// One round of a repeated measurement: every backend, then (with `--pytorch`) the reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThroughputRound {
    /// edgessl's rows, per backend.
    pub backends: Vec<BackendThroughput>,
    /// The reference's frames per second per method (empty without `--pytorch`).
    pub pytorch: Vec<(String, f64)>,
}

/// Median of `v` (mean of the middle two for an even count); `None` when empty.
pub fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// The rounds side by side: per method and backend, img/s and the fraction of that round's
/// roof in every round, the reference's img/s and the ratio in every round, and the median
/// ratio. Rounds alternate edgessl and the reference, so each ratio compares measurements
/// taken minutes apart, and the median discounts a round that landed in a slow moment of a
/// shared machine.
pub fn rounds_table(rounds: &[ThroughputRound]) -> Table {
    let mut t = Table::new([
        "method",
        "backend",
        "img/s per round",
        "of roof per round",
        "of sgemm during steps per round",
        "PyTorch img/s per round",
        "vs PyTorch per round",
        "median vs PyTorch",
    ]);
    let Some(first) = rounds.first() else {
        return t;
    };
    let join = |v: &[f64], f: &dyn Fn(f64) -> String| {
        v.iter().map(|x| f(*x)).collect::<Vec<_>>().join(" / ")
    };
    for b in &first.backends {
        for row in &b.rows {
            let mut ips = Vec::new();
            let mut of_roof = Vec::new();
            let mut of_during = Vec::new();
            let mut torch = Vec::new();
            let mut ratios = Vec::new();
            for round in rounds {
                let Some((bt, r)) = round
                    .backends
                    .iter()
                    .filter(|x| x.backend == b.backend)
                    .find_map(|x| Some((x, x.rows.iter().find(|r| r.method == row.method)?)))
                else {
                    continue;
                };
                ips.push(r.images_per_sec);
                of_roof.push(100.0 * r.achieved_gflops / bt.roof.gflops.max(1e-9));
                of_during.push(of_sgemm_during(r));
                if let Some((_, t)) = round.pytorch.iter().find(|(m, _)| *m == row.method) {
                    torch.push(*t);
                    ratios.push(r.images_per_sec / t.max(1e-9));
                }
            }
            t.row([
                row.method.clone(),
                b.backend.to_string(),
                join(&ips, &|x| format!("{x:.1}")),
                join(&of_roof, &|x| format!("{x:.0} %")),
                of_during.join(" / "),
                if torch.is_empty() {
                    "-".into()
                } else {
                    join(&torch, &|x| format!("{x:.1}"))
                },
                if ratios.is_empty() {
                    "-".into()
                } else {
                    join(&ratios, &|x| format!("{x:.2}x"))
                },
                median(&ratios).map_or("-".into(), |m| format!("{m:.2}x")),
            ]);
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
