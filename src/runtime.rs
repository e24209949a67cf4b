//! Process-wide runtime settings: thread pools, the heap policy and the convolution
//! algorithm.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};

/// Size rayon's global pool (used by the flex and ndarray backends and the data path).
/// `0` keeps the default (one thread per core). Must run before any parallel work.
pub fn set_threads(threads: usize) -> anyhow::Result<()> {
    if threads == 0 {
        return Ok(());
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|e| anyhow::anyhow!("--threads {threads}: cannot size the thread pool: {e}"))
}

/// What the process heap does with freed tensor buffers.
///
/// A training step allocates and frees the same multi-megabyte feature maps every step.
/// With glibc's defaults those buffers are unmapped (or trimmed off the heap top) when freed
/// and page-faulted back in, zeroed by the kernel, on the next step: measured at batch 128
/// on the compact trunk, that costs 15–20 % of the step (and a third of a 1024² matmul).
/// [`HeapPolicy::Retain`] keeps them in the process for reuse, at a higher peak RSS
/// (+18 % there: 390 MiB against 330 MiB, from heap fragmentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum HeapPolicy {
    /// Keep freed buffers in the process heap (fastest; the default).
    #[default]
    Retain,
    /// The C library's defaults: return large buffers to the OS at once (lowest peak RSS).
    Release,
}

impl HeapPolicy {
    /// The name used on the command line and in `summary.json`.
    pub fn name(self) -> &'static str {
        match self {
            HeapPolicy::Retain => "retain",
            HeapPolicy::Release => "release",
        }
    }
}

impl std::fmt::Display for HeapPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether [`set_heap_policy`] was called with [`HeapPolicy::Retain`].
static RETAINED: AtomicBool = AtomicBool::new(false);

/// Apply `policy` to the process heap. Call once at start-up, before the big allocations.
///
/// Only glibc's malloc is tuned (`mallopt`); with any other C library the call records the
/// policy and changes nothing.
pub fn set_heap_policy(policy: HeapPolicy) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if policy == HeapPolicy::Retain {
        // Largest mmap threshold glibc accepts on 64-bit (32 MiB): buffers up to that come
        // from the heap; a 1 GiB trim threshold keeps freed heap memory for the next step.
        // SAFETY: mallopt only changes allocator parameters; it is thread-safe in glibc.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        }
    }
    RETAINED.store(policy == HeapPolicy::Retain, Ordering::Relaxed);
}

/// The policy applied by [`set_heap_policy`] (the C library's own behaviour, `Release`, if
/// none was).
pub fn heap_policy() -> HeapPolicy {
    if RETAINED.load(Ordering::Relaxed) {
        HeapPolicy::Retain
    } else {
        HeapPolicy::Release
    }
}

/// Whether 3x3 stride-1 convolutions may run as Winograd F(2x2, 3x3) (on by default).
static WINOGRAD: AtomicBool = AtomicBool::new(true);

/// Let the 3x3 stride-1 convolutions on large enough maps run as Winograd F(2x2, 3x3)
/// (x86-64 with AVX2 and FMA; 6-11 % faster training steps on the 28 px trunk), or keep
/// every convolution a direct sum (`false`: the arithmetic, and so the bits, of edgessl
/// before it). Call before training starts.
pub fn set_winograd(enabled: bool) {
    WINOGRAD.store(enabled, Ordering::Relaxed);
}

/// The setting of [`set_winograd`].
pub fn winograd() -> bool {
    WINOGRAD.load(Ordering::Relaxed)
}
