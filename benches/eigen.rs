//! DirectPred's per-step linear algebra (criterion): the symmetric eigendecomposition of F at
//! d = 128, 256, 512 and the F update from a batch of 2B = 256 projector outputs at d = 128.
//!
//! `cargo bench --features ndarray,candle --bench eigen`. Compare with a step of
//! `benches/step.rs` / `edgessl bench throughput` (target: both together <= 2 % of a step
//! at d = 128).

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use edgessl::ssl::CorrelationEstimate;
use edgessl::ssl::symmetric_eigen::SymmetricEigen;
use std::hint::black_box;
use std::time::Duration;

/// Deterministic values in [-1, 1).
fn lcg(seed: u64, n: usize) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

/// A correlation-like matrix: `ZᵀZ / n` of random rows (symmetric, positive semi-definite).
fn correlation(d: usize) -> Vec<f64> {
    let n = 2 * d;
    let z = lcg(d as u64, n * d);
    let mut f = vec![0.0; d * d];
    for r in 0..n {
        let row = &z[r * d..(r + 1) * d];
        for i in 0..d {
            for j in 0..d {
                f[i * d + j] += row[i] * row[j] / n as f64;
            }
        }
    }
    f
}

fn eigen(c: &mut Criterion) {
    let mut g = c.benchmark_group("symmetric_eigen");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    for d in [128, 256, 512] {
        let f = correlation(d);
        g.bench_with_input(BenchmarkId::from_parameter(d), &d, |b, &d| {
            b.iter(|| SymmetricEigen::new(black_box(&f), d).unwrap())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("correlation_update");
    g.sample_size(20).measurement_time(Duration::from_secs(2));
    let (n, d) = (256, 128);
    let z: Vec<f32> = lcg(7, n * d).into_iter().map(|v| v as f32).collect();
    let mut estimate = CorrelationEstimate::new(d, 0.3);
    g.bench_function(BenchmarkId::new("n256", d), |b| {
        b.iter(|| estimate.update(black_box(&z), n))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    // No plots: plotters' SVG text rendering fails on machines without the fonts it expects.
    config = Criterion::default().without_plots();
    targets = eigen
}
criterion_main!(benches);
