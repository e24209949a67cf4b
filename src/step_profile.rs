//! Where a training step's time goes: the phases of the learner's step (target forward,
//! online forward, F update, loss, backward, optimiser, predictor rule, EMA), and inside them
//! the fast kernels of [`crate::ops`] (convolution forward, input and weight gradients,
//! BatchNorm forward and backward), per layer shape.
//!
//! Off by default and then free: every hook first checks a thread-local flag. When a
//! recording is on ([`start`] … [`finish`]), each phase boundary synchronises the device so
//! asynchronous backends (CUDA, Metal) are charged to the phase that queued the work. What a
//! phase spends outside the recorded kernels is burn's own ops (ReLU, residual add, pooling,
//! the linear heads, the loss, autodiff bookkeeping) and is reported as the phase's
//! remainder.
//!
//! The recording is per thread: the step, its kernels and its backward run on the thread that
//! calls [`crate::ssl::Learner::step`] (the kernels' own worker threads are inside the timed
//! calls).

use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::time::Instant;

/// A recorded kernel: op name, layer shape, calls, seconds, FLOPs and bytes (all summed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelRow {
    /// The phase the kernel ran in.
    pub phase: String,
    /// What the kernel computes, e.g. `conv weight grad`.
    pub op: String,
    /// The layer's shape, e.g. `256x32x28x28 -> 32 k3x3 s1`.
    pub shape: String,
    /// Calls over the recorded steps.
    pub calls: u64,
    /// Seconds over the recorded steps.
    pub secs: f64,
    /// Floating-point operations over the recorded steps (0 where not counted).
    pub flops: f64,
    /// Bytes of feature maps read and written over the recorded steps, counted for the
    /// memory-bound kernels (BatchNorm's passes; 0 where not counted).
    #[serde(default)]
    pub bytes: f64,
}

/// What one kernel call computes and moves, for the profile's rates: the FLOPs of a
/// compute-bound kernel (a convolution), the bytes of a memory-bound one (BatchNorm).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Work {
    pub flops: f64,
    pub bytes: f64,
}

impl Work {
    /// `flops` floating-point operations.
    pub(crate) fn flops(flops: f64) -> Self {
        Self { flops, bytes: 0.0 }
    }

    /// `bytes` read and written.
    pub(crate) fn bytes(bytes: f64) -> Self {
        Self { flops: 0.0, bytes }
    }
}

/// Kernel rows with the same key, summed ([`StepProfile::by_op`], [`StepProfile::by_layer`]).
#[derive(Debug, Clone, PartialEq)]
pub struct KernelSum {
    /// The key: `[phase, op]` or `[op, shape]`.
    pub key: [String; 2],
    /// Calls over the recorded steps.
    pub calls: u64,
    /// Seconds over the recorded steps.
    pub secs: f64,
    /// FLOPs over the recorded steps.
    pub flops: f64,
    /// Bytes over the recorded steps.
    pub bytes: f64,
}

/// A phase of the step, with its wall time over the recorded steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseRow {
    /// The phase, e.g. `backward`.
    pub phase: String,
    /// Seconds over the recorded steps.
    pub secs: f64,
}

/// A finished recording.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StepProfile {
    /// Steps recorded.
    pub steps: u64,
    /// Phases in the order they first ran.
    pub phases: Vec<PhaseRow>,
    /// Kernels in the order they first ran.
    pub kernels: Vec<KernelRow>,
}

struct Recorder {
    profile: StepProfile,
    /// The open phase (index into `phases`) and when it began.
    open: Option<(usize, Instant)>,
}

thread_local! {
    static RECORDER: RefCell<Option<Recorder>> = const { RefCell::new(None) };
}

/// Starts recording on this thread (a recording in progress is discarded).
pub fn start() {
    RECORDER.with(|r| {
        *r.borrow_mut() = Some(Recorder {
            profile: StepProfile::default(),
            open: None,
        })
    });
}

/// Whether this thread is recording.
pub fn is_recording() -> bool {
    RECORDER.with(|r| r.borrow().is_some())
}

/// Ends the recording (closing the open phase) and returns it; `None` if none was started.
pub fn finish<B: Backend>(device: &B::Device) -> Option<StepProfile> {
    close_phase::<B>(device);
    RECORDER.with(|r| r.borrow_mut().take().map(|rec| rec.profile))
}

/// Closes the open phase and opens `name` (no-op unless recording).
pub fn phase<B: Backend>(device: &B::Device, name: &str) {
    if !is_recording() {
        return;
    }
    close_phase::<B>(device);
    RECORDER.with(|r| {
        if let Some(rec) = r.borrow_mut().as_mut() {
            let phases = &mut rec.profile.phases;
            let i = match phases.iter().position(|p| p.phase == name) {
                Some(i) => i,
                None => {
                    phases.push(PhaseRow {
                        phase: name.to_string(),
                        secs: 0.0,
                    });
                    phases.len() - 1
                }
            };
            rec.open = Some((i, Instant::now()));
        }
    });
}

/// Closes the open phase (no-op unless recording): its time so far is added to it.
pub fn close_phase<B: Backend>(device: &B::Device) {
    if !is_recording() {
        return;
    }
    // Asynchronous backends: the queued work belongs to the phase that queued it.
    let _ = B::sync(device);
    RECORDER.with(|r| {
        if let Some(rec) = r.borrow_mut().as_mut()
            && let Some((i, t)) = rec.open.take()
        {
            rec.profile.phases[i].secs += t.elapsed().as_secs_f64();
        }
    });
}

/// Counts one finished step (no-op unless recording).
pub fn count_step() {
    RECORDER.with(|r| {
        if let Some(rec) = r.borrow_mut().as_mut() {
            rec.profile.steps += 1;
        }
    });
}

/// Runs `f`, charging its time to kernel `op` of layer `shape` in the open phase. `f` must
/// finish its work before returning (the fast kernels are synchronous host code).
pub(crate) fn kernel<T>(
    op: &'static str,
    shape: impl FnOnce() -> String,
    work: Work,
    f: impl FnOnce() -> T,
) -> T {
    if !is_recording() {
        return f();
    }
    let t = Instant::now();
    let out = f();
    let secs = t.elapsed().as_secs_f64();
    let shape = shape();
    RECORDER.with(|r| {
        if let Some(rec) = r.borrow_mut().as_mut() {
            let phase = rec
                .open
                .map_or_else(String::new, |(i, _)| rec.profile.phases[i].phase.clone());
            let kernels = &mut rec.profile.kernels;
            match kernels
                .iter_mut()
                .find(|k| k.op == op && k.shape == shape && k.phase == phase)
            {
                Some(k) => {
                    k.calls += 1;
                    k.secs += secs;
                    k.flops += work.flops;
                    k.bytes += work.bytes;
                }
                None => kernels.push(KernelRow {
                    phase,
                    op: op.to_string(),
                    shape,
                    calls: 1,
                    secs,
                    flops: work.flops,
                    bytes: work.bytes,
                }),
            }
        }
    });
    out
}

impl StepProfile {
    /// Seconds of all phases (the recorded steps' wall time).
    pub fn total_secs(&self) -> f64 {
        self.phases.iter().map(|p| p.secs).sum()
    }

    /// Seconds of the recorded kernels in `phase`.
    pub fn kernel_secs(&self, phase: &str) -> f64 {
        self.kernels
            .iter()
            .filter(|k| k.phase == phase)
            .map(|k| k.secs)
            .sum()
    }

    /// Kernel rows summed over shapes, keyed `[phase, op]`, in first-run order.
    pub fn by_op(&self) -> Vec<KernelSum> {
        self.summed(|k| [&k.phase, &k.op])
    }

    /// Kernel rows summed over phases, keyed `[op, shape]`, in first-run order (the online
    /// and target forward of a layer together).
    pub fn by_layer(&self) -> Vec<KernelSum> {
        self.summed(|k| [&k.op, &k.shape])
    }

    /// Kernel rows with equal `key` summed, in first-run order.
    fn summed<'a>(&'a self, key: impl Fn(&'a KernelRow) -> [&'a String; 2]) -> Vec<KernelSum> {
        let mut out: Vec<KernelSum> = Vec::new();
        for k in &self.kernels {
            let key = key(k);
            match out
                .iter_mut()
                .find(|o| o.key[0] == *key[0] && o.key[1] == *key[1])
            {
                Some(o) => {
                    o.calls += k.calls;
                    o.secs += k.secs;
                    o.flops += k.flops;
                    o.bytes += k.bytes;
                }
                None => out.push(KernelSum {
                    key: key.map(String::clone),
                    calls: k.calls,
                    secs: k.secs,
                    flops: k.flops,
                    bytes: k.bytes,
                }),
            }
        }
        out
    }
}
