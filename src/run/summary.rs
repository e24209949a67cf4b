//! `summary.json`: what a pretraining run did, in numbers, next to its outputs.
//!
//! The log has windowed rates; this is the whole run's, so scripts (and `bench accuracy`) can
//! compare runs without re-parsing the log.

use crate::backend::BackendKind;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One pretraining run's totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    /// Method label (`directpred`, `byol`, ...).
    pub method: String,
    /// Backend the steps ran on.
    pub backend: BackendKind,
    /// Frames per batch.
    pub batch: usize,
    /// The learner's step count at the end (resumed steps included).
    pub steps: u64,
    /// Steps taken by this process.
    pub steps_this_run: u64,
    /// Frames consumed by this process.
    pub frames_this_run: u64,
    /// Seconds of training in this process (data waits included, evaluation excluded).
    pub train_secs_this_run: f64,
    /// Training frames per second in this process.
    pub images_per_sec: f64,
    /// VmHWM at the end of training, before the final evaluation (None where the OS does not
    /// report it).
    pub peak_rss_bytes: Option<u64>,
    /// Heap policy the process ran with (absent in summaries from before it existed).
    #[serde(default)]
    pub heap: Option<crate::runtime::HeapPolicy>,
    /// Whether 3x3 stride-1 convolutions ran as Winograd F(2x2, 3x3) (absent in summaries
    /// from before it existed, which ran direct sums).
    #[serde(default)]
    pub winograd: Option<bool>,
    /// Loss of the last step.
    pub last_loss: f64,
    /// Mean loss over the last up-to-50 steps.
    pub recent_loss: f64,
}

impl TrainingSummary {
    /// Write as pretty JSON.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    }

    /// Read a `summary.json`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not a run summary", path.display()))
    }
}
