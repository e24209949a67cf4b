//! The pretraining loop: pull view batches, step the learner, report to an observer.

use crate::data::{DataError, ViewBatch};
use crate::ssl::{Learner, SslError, StepStats};
use crate::step_profile;
use burn::tensor::backend::AutodiffBackend;
use std::time::{Duration, Instant};

/// Anything that yields batches of view pairs (a dataset loader, a camera stream).
pub trait BatchStream {
    /// The next batch; `Ok(None)` when a finite stream has ended.
    fn next_batch(&mut self) -> Result<Option<ViewBatch>, DataError>;
}

/// Errors that stop a run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The data path failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A training step failed.
    #[error(transparent)]
    Step(#[from] SslError),
    /// The observer asked to stop with an error (e.g. collapse, checkpoint write failure).
    #[error("{0}")]
    Stopped(String),
}

/// What the observer tells the loop after each step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Keep going.
    Continue,
    /// Stop cleanly after this step (Ctrl-C, a budget reached).
    Stop,
}

/// What happened in a run.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Steps taken in this run (not counting steps before a resume).
    pub steps: u64,
    /// Frames consumed (each gives two views).
    pub frames: u64,
    /// Wall time spent in training steps (data waits included).
    pub elapsed: Duration,
    /// Loss of the last step.
    pub last_loss: f64,
    /// Mean loss over the last up-to-50 steps.
    pub recent_loss: f64,
    /// Whether the run ended because the stream ended.
    pub stream_ended: bool,
}

impl RunSummary {
    /// Frames per second over the run.
    pub fn frames_per_sec(&self) -> f64 {
        self.frames as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Per-step information passed to the observer.
pub struct StepInfo<'a> {
    /// The step's loss and index.
    pub stats: StepStats,
    /// Frames in this step's batch.
    pub frames: usize,
    /// Time the step took (data wait included).
    pub elapsed: Duration,
    /// The batch that was trained on.
    pub batch: &'a ViewBatch,
}

/// Train until the learner has taken `until_step` steps, the stream ends, or the observer stops.
///
/// The observer also sees the batch stream, e.g. to checkpoint a replay buffer.
pub fn train<B: AutodiffBackend, S: BatchStream + ?Sized>(
    learner: &mut Learner<B>,
    batches: &mut S,
    until_step: u64,
    mut observe: impl FnMut(&Learner<B>, &S, &StepInfo) -> Result<Control, TrainError>,
) -> Result<RunSummary, TrainError> {
    let start = Instant::now();
    let mut summary = RunSummary {
        steps: 0,
        frames: 0,
        elapsed: Duration::ZERO,
        last_loss: f64::NAN,
        recent_loss: f64::NAN,
        stream_ended: false,
    };
    let mut recent = std::collections::VecDeque::with_capacity(50);
    while learner.step_count() < until_step {
        let t0 = Instant::now();
        step_profile::phase::<B>(learner.device(), "data (read, decode, augment)");
        let Some(batch) = batches.next_batch()? else {
            summary.stream_ended = true;
            break;
        };
        let stats = learner.step(&batch)?;
        step_profile::phase::<B>(learner.device(), "observer (log, monitors, checkpoints)");
        summary.steps += 1;
        summary.frames += batch.batch as u64;
        summary.last_loss = stats.loss;
        if recent.len() == 50 {
            recent.pop_front();
        }
        recent.push_back(stats.loss);
        let info = StepInfo {
            stats,
            frames: batch.batch,
            elapsed: t0.elapsed(),
            batch: &batch,
        };
        if observe(learner, batches, &info)? == Control::Stop {
            break;
        }
    }
    summary.elapsed = start.elapsed();
    summary.recent_loss = recent.iter().sum::<f64>() / recent.len().max(1) as f64;
    Ok(summary)
}

impl BatchStream for crate::data::BatchLoader {
    fn next_batch(&mut self) -> Result<Option<ViewBatch>, DataError> {
        crate::data::BatchLoader::next_batch(self)
    }
}
