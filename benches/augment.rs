//! Two-view augmentation throughput on one core, per preset: the data path must outpace the
//! trainer (REFERENCE.md's PyTorch peer trains at ~100-150 img/s on this class of machine).
//!
//! Run: `cargo bench --release --features ndarray,candle --bench augment`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use edgessl::data::{AugmentConfig, Frame};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use std::hint::black_box;

/// Frames per measured iteration.
const FRAMES: usize = 64;

/// Textured frames (so blur and jitter do real work) at the preset's native size.
fn frames(size: usize, channels: usize) -> Vec<Frame> {
    (0..FRAMES)
        .map(|i| Frame {
            width: size,
            height: size,
            channels,
            pixels: (0..size * size * channels)
                .map(|p| ((p * 7 + i * 13) % 251) as u8)
                .collect(),
            label: None,
        })
        .collect()
}

fn bench_two_views(c: &mut Criterion) {
    let mut group = c.benchmark_group("two_views_one_core");
    for (preset, size, channels) in [("fashion28", 28, 1), ("cifar32", 32, 3), ("stl96", 96, 3)] {
        let cfg = AugmentConfig::preset(preset).expect("known preset");
        let input = frames(size, channels);
        let (mut a, mut b) = (vec![0f32; cfg.sample_len()], vec![0f32; cfg.sample_len()]);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
        group.throughput(Throughput::Elements(FRAMES as u64));
        group.bench_function(format!("{preset}_{size}px_{channels}ch"), |bench| {
            bench.iter(|| {
                for frame in &input {
                    cfg.two_views(black_box(frame), &mut rng, &mut a, &mut b);
                }
                black_box((&a, &b));
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // Plots need fonts that headless devices and CI lack; the numbers are what matter.
    config = Criterion::default().without_plots();
    targets = bench_two_views
}
criterion_main!(benches);
