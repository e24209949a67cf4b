//! The sgemm roof: GFLOP/s of a large f32 matrix product on the backend and threads the
//! training runs with. Convolutions are lowered to GEMMs (im2col), so this is the ceiling a
//! training step could approach; the achieved fraction says how much time goes elsewhere.
//! And the memory roof ([`memory_roof`]): the streaming bandwidth that bounds the kernels
//! that move whole maps and compute little (BatchNorm).

use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// One roof measurement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Roof {
    /// Matrix size (`n x n` times `n x n`).
    pub n: usize,
    /// Best seconds of one product over the repetitions.
    pub best_secs: f64,
    /// `2 n³ / best_secs / 1e9`.
    pub gflops: f64,
    /// GFLOP/s of the slowest repetition: how far a shared machine's speed moved while the
    /// roof was measured.
    #[serde(default)]
    pub slowest_gflops: f64,
    /// Repetitions the best was taken from.
    #[serde(default)]
    pub reps: usize,
}

impl Roof {
    /// Both measurements as one: the best of all their repetitions, the slowest of them.
    pub fn merge(self, other: Roof) -> Roof {
        let best = if other.gflops > self.gflops {
            other
        } else {
            self
        };
        Roof {
            slowest_gflops: self.slowest_gflops.min(other.slowest_gflops),
            reps: self.reps + other.reps,
            ..best
        }
    }
}

/// One `n x n` f32 matrix product on `B`, set up (and run once) ahead, to time on demand.
pub struct Sgemm<B: Backend> {
    a: Tensor<B, 2>,
    b: Tensor<B, 2>,
    n: usize,
}

impl<B: Backend> Sgemm<B> {
    /// Two random `n x n` matrices on `device`, multiplied once to warm up.
    pub fn new(n: usize, device: &B::Device) -> Self {
        let s = Self {
            a: Tensor::random([n, n], Distribution::Default, device),
            b: Tensor::random([n, n], Distribution::Default, device),
            n,
        };
        s.secs();
        s
    }

    /// Seconds of one product, read back so lazy or asynchronous backends finish it.
    pub fn secs(&self) -> f64 {
        let t = Instant::now();
        let c = self.a.clone().matmul(self.b.clone());
        let _ = c.slice([0..1, 0..1]).into_data();
        t.elapsed().as_secs_f64()
    }

    /// The FLOPs of one product, `2 n³`.
    pub fn flops(&self) -> f64 {
        2.0 * (self.n as f64).powi(3)
    }
}

/// Time `reps` products of two random `n x n` f32 matrices (after one warm-up) on `B` and
/// keep the best, which is the least disturbed by other load on a shared machine.
pub fn sgemm_roof<B: Backend>(n: usize, reps: usize, device: &B::Device) -> Roof {
    let sgemm = Sgemm::<B>::new(n, device);
    let (mut best, mut worst) = (f64::INFINITY, 0.0f64);
    for _ in 0..reps.max(1) {
        let secs = sgemm.secs();
        best = best.min(secs);
        worst = worst.max(secs);
    }
    Roof {
        n,
        best_secs: best,
        gflops: sgemm.flops() / best / 1e9,
        slowest_gflops: sgemm.flops() / worst / 1e9,
        reps: reps.max(1),
    }
}

/// The memory roof: GB/s of a streaming pass over buffers larger than the last-level cache
/// on all threads, the ceiling of the memory-bound kernels (BatchNorm's passes each read or
/// write whole feature maps, host code on the CPU backends).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MemoryRoof {
    /// Size of each of the two buffers, MiB.
    pub mib: usize,
    /// Best seconds of one pass over the repetitions.
    pub best_secs: f64,
    /// Bytes read and written per pass (`3 x` a buffer) over `best_secs`, in GB/s.
    pub gbs: f64,
    /// Repetitions the best was taken from.
    pub reps: usize,
}

/// Time `reps` passes of `y = y·a + x` over two `mib`-MiB f32 buffers (after one warm-up)
/// on the rayon pool, and keep the best. Two reads and one write per element, the write in
/// place as BatchNorm's backward writes `dx` over `dy`, so no line is fetched only to be
/// overwritten.
pub fn memory_roof(mib: usize, reps: usize) -> MemoryRoof {
    use rayon::prelude::*;
    const CHUNK: usize = 1 << 16;
    let (mib, reps) = (mib.max(1), reps.max(1));
    let len = (mib << 20) / 4;
    let x = vec![1.0f32; len];
    let mut y = vec![0.5f32; len];
    let mut pass = || {
        let t = Instant::now();
        y.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(y, x)| {
                for (y, x) in y.iter_mut().zip(x) {
                    *y = *y * 0.5 + *x;
                }
            });
        t.elapsed().as_secs_f64()
    };
    pass();
    let best = (0..reps).map(|_| pass()).fold(f64::INFINITY, f64::min);
    std::hint::black_box(&y);
    MemoryRoof {
        mib,
        best_secs: best,
        gbs: (3 * 4 * len) as f64 / best / 1e9,
        reps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_roofs_keep_the_best_rate_and_the_slowest_repetition() {
        let r = |best_secs: f64, slowest: f64| Roof {
            n: 8,
            best_secs,
            gflops: 1024.0 / best_secs / 1e9,
            slowest_gflops: slowest,
            reps: 5,
        };
        let (a, b) = (r(2e-6, 0.3), r(1e-6, 0.2));
        for m in [a.merge(b), b.merge(a)] {
            assert_eq!(m.best_secs, 1e-6);
            assert_eq!(m.gflops, b.gflops);
            assert_eq!(m.slowest_gflops, 0.2);
            assert_eq!(m.reps, 10);
        }
    }

    #[cfg(feature = "flex")]
    #[test]
    fn a_measured_roof_has_its_slowest_repetition_at_or_below_its_best() {
        let real = sgemm_roof::<burn::backend::Flex>(32, 3, &Default::default());
        assert!(real.slowest_gflops <= real.gflops && real.gflops > 0.0);
    }

    #[test]
    fn the_memory_roof_counts_two_reads_and_a_write_per_element() {
        let m = memory_roof(1, 2);
        assert_eq!((m.mib, m.reps), (1, 2));
        assert!(m.best_secs > 0.0 && m.gbs.is_finite());
        let bytes = 3.0 * (1 << 20) as f64;
        assert!((m.gbs - bytes / m.best_secs / 1e9).abs() <= 1e-9 * m.gbs);
    }
}
