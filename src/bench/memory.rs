//! `bench memory`: measured peak RSS per method (one child process each) next to the
//! accounting model's prediction.

use super::accounting::{MemoryEstimate, estimate};
use super::child::{ChildReport, spawn_child};
use super::table::{Table, mib};
use crate::config::TrainConfig;
use serde::{Deserialize, Serialize};

/// One method's measurement and prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryRow {
    /// Method label.
    pub method: String,
    /// What the child process measured.
    pub measured: ChildReport,
    /// The accounting, with the child's measured baseline as its constant term.
    pub predicted: MemoryEstimate,
    /// `(predicted − measured) / measured` of the peak, when the backend's memory is host RSS.
    pub relative_error: Option<f64>,
}

impl MemoryRow {
    /// Run the child for `config` and account for it; `mmap_threshold` sets glibc's
    /// `MALLOC_MMAP_THRESHOLD_` in the child (see `bench memory --mmap-threshold`).
    pub fn measure(config: &TrainConfig, mmap_threshold: Option<u64>) -> anyhow::Result<Self> {
        let measured = spawn_child(config, mmap_threshold)?;
        let predicted = estimate(
            &config.model,
            &config.method,
            &config.optim,
            config.train.batch,
            measured.baseline_hwm_bytes,
        );
        let relative_error =
            (config.train.backend.is_cpu() && measured.peak_hwm_bytes > 0).then(|| {
                (predicted.total() as f64 - measured.peak_hwm_bytes as f64)
                    / measured.peak_hwm_bytes as f64
            });
        Ok(Self {
            method: config.method.label(),
            measured,
            predicted,
            relative_error,
        })
    }
}

/// The comparison table: measured peak vs predicted, per method.
pub fn measured_table(rows: &[MemoryRow]) -> Table {
    let mut t = Table::new([
        "method",
        "batch",
        "baseline MiB",
        "before step MiB",
        "measured peak MiB",
        "predicted MiB",
        "error",
        "RSS after MiB",
        "s/step",
    ]);
    for r in rows {
        let m = &r.measured;
        t.row([
            r.method.clone(),
            m.batch.to_string(),
            mib(m.baseline_hwm_bytes),
            mib(m.before_step_hwm_bytes),
            mib(m.peak_hwm_bytes),
            mib(r.predicted.total()),
            r.relative_error
                .map_or("n/a".into(), |e| format!("{:+.1} %", 100.0 * e)),
            mib(m.rss_after_bytes),
            format!("{:.2}", m.secs_per_step),
        ]);
    }
    t
}

/// The accounting breakdown, per method.
pub fn breakdown_table(rows: &[MemoryRow]) -> Table {
    let mut t = Table::new([
        "method",
        "params",
        "grads",
        "optimizer",
        "target",
        "predictor",
        "F + eigen",
        "activations",
        "transient",
        "baseline",
        "total MiB",
    ]);
    for r in rows {
        let p = &r.predicted;
        t.row([
            r.method.clone(),
            mib(p.parameters),
            mib(p.gradients),
            mib(p.optimizer),
            mib(p.target),
            mib(p.predictor),
            mib(p.correlation),
            mib(p.activations),
            mib(p.transient),
            mib(p.baseline),
            mib(p.total()),
        ]);
    }
    t
}
