//! The batch loader: a background thread that turns a frame source into `ViewBatch`es ahead
//! of the training step, through a bounded queue so memory stays fixed.
//!
//! Finite sources (folders, IDX, CIFAR-10, STL-10, synthetic) are read into memory once and
//! cycled through seeded epoch permutations forever, batch `t` being a pure function of
//! (seed, t), so a run resumed at step `t` continues with identical batches. Streams are read
//! sequentially; with a replay buffer each batch mixes fresh frames with frames replayed
//! uniformly from the stream's history.

use super::augment::AugmentConfig;
use super::dataset::{InMemoryDataset, augment_batch, prepare_frame};
use super::reservoir::Reservoir;
use super::seeding::{self, DOMAIN_REPLAY};
use super::{DataError, Frame, FrameSource, ViewBatch};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

/// Batches prepared ahead of the consumer. Two keep the trainer fed (one being consumed, one
/// ready) without holding many batches of 96 px views in memory.
pub const PREFETCH: usize = 2;

/// Replay settings for stream sources.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayConfig {
    /// Memory for replayed frames (pixels and labels).
    pub budget_bytes: usize,
    /// Share of each batch drawn from the buffer once it holds frames, in [0, 1).
    pub fraction: f32,
    /// A buffer restored from a checkpoint, continuing where the device left off.
    pub restore: Option<Reservoir>,
}

/// What the worker thread hands over.
enum Message {
    Batch(ViewBatch),
    End,
    Failed(DataError),
}

/// Background batch producer. Dropping it stops the worker.
pub struct BatchLoader {
    rx: Receiver<Message>,
    stop: Arc<AtomicBool>,
    description: String,
    next_step: u64,
    batch: usize,
    dataset_len: Option<usize>,
    reservoir: Option<Arc<Mutex<Reservoir>>>,
    finished: bool,
}

impl BatchLoader {
    /// Starts producing batches of `batch` frames from `source`, beginning at `start_step`.
    /// Finite sources are loaded into memory here (errors surface now); `replay` applies to
    /// streams only.
    pub fn new(
        source: Box<dyn FrameSource>,
        augment: AugmentConfig,
        batch: usize,
        seed: u64,
        start_step: u64,
        replay: Option<ReplayConfig>,
    ) -> Result<Self, DataError> {
        augment.validate()?;
        if batch == 0 {
            return Err(DataError::Invalid("batch size must be >= 1".into()));
        }
        let plan = Plan {
            augment,
            batch,
            seed,
            start_step,
        };
        if source.len_hint().is_some() {
            Self::start_dataset(source, plan)
        } else {
            Self::start_stream(source, plan, replay)
        }
    }

    /// Loads a finite source into memory and cycles through it on the worker.
    fn start_dataset(mut source: Box<dyn FrameSource>, plan: Plan) -> Result<Self, DataError> {
        let mut dataset = InMemoryDataset::load(source.as_mut(), &plan.augment, plan.seed)?;
        let skipped = match source.skipped() {
            0 => String::new(),
            n => format!(", {n} unreadable skipped"),
        };
        let description = format!(
            "{} [{} frames in memory, {:.1} MiB{skipped}] → {}",
            source.describe(),
            dataset.len(),
            dataset.pixel_bytes() as f64 / (1 << 20) as f64,
            plan.describe()
        );
        drop(source); // the in-memory copy is all we need
        let dataset_len = Some(dataset.len());
        let (batch, mut step) = (plan.batch, plan.start_step);
        Self::spawn(plan, description, dataset_len, None, move |tx, stop| {
            while send(tx, Message::Batch(dataset.batch_at(step, batch)), stop) {
                step += 1;
            }
        })
    }

    /// Reads a stream sequentially on the worker, mixing in replayed frames.
    fn start_stream(
        source: Box<dyn FrameSource>,
        plan: Plan,
        replay: Option<ReplayConfig>,
    ) -> Result<Self, DataError> {
        let (reservoir, fraction) = match replay {
            Some(cfg) => {
                if !(0.0..1.0).contains(&cfg.fraction) {
                    return Err(DataError::Invalid(format!(
                        "--replay-fraction {} must lie in [0, 1): each batch needs fresh frames",
                        cfg.fraction
                    )));
                }
                let res = cfg.restore.unwrap_or_else(|| {
                    Reservoir::new(
                        cfg.budget_bytes,
                        seeding::derive_seed(&[plan.seed, DOMAIN_REPLAY]),
                    )
                });
                (Some(Arc::new(Mutex::new(res))), cfg.fraction)
            }
            None => (None, 0.0),
        };
        let description = match &reservoir {
            Some(r) => format!(
                "{} → {}, replay {:.1} MiB ({:.0}% of each batch)",
                source.describe(),
                plan.describe(),
                lock(r).budget_bytes() as f64 / (1 << 20) as f64,
                fraction * 100.0
            ),
            None => format!("{} → {}, no replay", source.describe(), plan.describe()),
        };
        let mut batcher = StreamBatcher {
            source,
            augment: plan.augment.clone(),
            batch: plan.batch,
            seed: plan.seed,
            reservoir: reservoir.clone(),
            fraction,
        };
        let mut step = plan.start_step;
        Self::spawn(plan, description, None, reservoir, move |tx, stop| {
            loop {
                let message = match batcher.next(step) {
                    Ok(Some(b)) => Message::Batch(b),
                    Ok(None) => Message::End,
                    Err(e) => Message::Failed(e),
                };
                let last = !matches!(message, Message::Batch(_));
                if !send(tx, message, stop) || last {
                    return;
                }
                step += 1;
            }
        })
    }

    /// Starts `work` on the worker thread, feeding a queue of [`PREFETCH`] messages.
    fn spawn(
        plan: Plan,
        description: String,
        dataset_len: Option<usize>,
        reservoir: Option<Arc<Mutex<Reservoir>>>,
        work: impl FnOnce(&SyncSender<Message>, &AtomicBool) + Send + 'static,
    ) -> Result<Self, DataError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = sync_channel(PREFETCH);
        let stop_flag = stop.clone();
        std::thread::Builder::new()
            .name("edgessl-data".into())
            .spawn(move || work(&tx, &stop_flag))
            .map_err(|e| DataError::Invalid(format!("cannot start the data loader thread: {e}")))?;
        Ok(BatchLoader {
            rx,
            stop,
            description,
            next_step: plan.start_step,
            batch: plan.batch,
            dataset_len,
            reservoir,
            finished: false,
        })
    }

    /// The next batch; `Ok(None)` once a finite stream has ended (datasets never end).
    pub fn next_batch(&mut self) -> Result<Option<ViewBatch>, DataError> {
        if self.finished {
            return Ok(None);
        }
        match self.rx.recv() {
            Ok(Message::Batch(b)) => {
                self.next_step += 1;
                Ok(Some(b))
            }
            Ok(Message::End) => {
                self.finished = true;
                Ok(None)
            }
            Ok(Message::Failed(e)) => {
                self.finished = true;
                Err(e)
            }
            Err(_) => {
                self.finished = true;
                Err(DataError::Invalid(
                    "data loader thread stopped unexpectedly".into(),
                ))
            }
        }
    }

    /// One line for logs and run records: source, view geometry, batch, seed, replay.
    pub fn describe(&self) -> String {
        self.description.clone()
    }

    /// Step index of the batch `next_batch` returns next.
    pub fn step(&self) -> u64 {
        self.next_step
    }

    /// Batch size.
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// Frames held in memory for a finite dataset, `None` for streams.
    pub fn dataset_len(&self) -> Option<usize> {
        self.dataset_len
    }

    /// Steps that cover a finite dataset once (rounded up).
    pub fn steps_per_epoch(&self) -> Option<u64> {
        self.dataset_len.map(|n| n.div_ceil(self.batch) as u64)
    }

    /// A copy of the replay buffer for a checkpoint (streams with replay only). Because of
    /// prefetching it may already include the frames of the next batch or two.
    pub fn replay_snapshot(&self) -> Option<Reservoir> {
        self.reservoir.as_ref().map(|r| lock(r).clone())
    }
}

impl Drop for BatchLoader {
    fn drop(&mut self) {
        // The receiver goes with `self`, so the worker's next (or blocked) send fails and it
        // exits; a worker blocked reading stdin exits once the stream delivers or closes.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The replay buffer, even if a panicking thread poisoned its lock (its data stays valid:
/// every mutation completes before anything that could panic).
fn lock(r: &Mutex<Reservoir>) -> std::sync::MutexGuard<'_, Reservoir> {
    r.lock().unwrap_or_else(|p| p.into_inner())
}

/// What every batch shares: augmentation, size, seed, first step.
struct Plan {
    augment: AugmentConfig,
    batch: usize,
    seed: u64,
    start_step: u64,
}

impl Plan {
    fn describe(&self) -> String {
        let a = &self.augment;
        format!(
            "{} views {}x{}x{}, batch {}, seed {}",
            a.name, a.size, a.size, a.channels, self.batch, self.seed
        )
    }
}

/// Hands a message over, blocking while the queue is full; false once the consumer is gone
/// (dropping the loader drops the receiver, which wakes a blocked send with an error).
fn send(tx: &SyncSender<Message>, message: Message, stop: &AtomicBool) -> bool {
    !stop.load(Ordering::Relaxed) && tx.send(message).is_ok()
}

/// Builds batches from a sequential stream, mixing in replayed frames.
struct StreamBatcher {
    source: Box<dyn FrameSource>,
    augment: AugmentConfig,
    batch: usize,
    seed: u64,
    reservoir: Option<Arc<Mutex<Reservoir>>>,
    fraction: f32,
}

impl StreamBatcher {
    fn next(&mut self, step: u64) -> Result<Option<ViewBatch>, DataError> {
        let origin = self.source.describe();
        let replay_n = match &self.reservoir {
            Some(r) => {
                let held = lock(r).len();
                // At least one fresh frame per batch, so the stream keeps moving.
                ((self.batch as f32 * self.fraction).round() as usize)
                    .min(held)
                    .min(self.batch - 1)
            }
            None => 0,
        };
        let fresh_n = self.batch - replay_n;
        let mut frames: Vec<Frame> = Vec::with_capacity(self.batch);
        for _ in 0..fresh_n {
            match self.source.next_frame()? {
                Some(f) => frames.push(prepare_frame(f, &self.augment, &origin)?),
                None => {
                    if !frames.is_empty() {
                        tracing::info!(
                            "{origin}: stream ended; dropping a partial batch of {} frames",
                            frames.len()
                        );
                    }
                    return Ok(None);
                }
            }
        }
        if let Some(r) = &self.reservoir {
            let mut res = lock(r);
            // Replay is drawn before this batch's frames enter the buffer, so it is history.
            let mut rng = seeding::rng_for(&[self.seed, DOMAIN_REPLAY, step]);
            let replayed = res.sample(&mut rng, replay_n);
            for f in &frames {
                res.insert(f)?;
            }
            frames.extend(replayed);
        }
        let refs: Vec<&Frame> = frames.iter().collect();
        Ok(Some(augment_batch(&refs, &self.augment, self.seed, step)))
    }
}
