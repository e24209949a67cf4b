//! One training step per method, from tiny to the reference shape (criterion).
//!
//! `cargo bench --features ndarray,candle --bench step`. The reference shape (compact trunk,
//! 28 px gray, batch 32) takes seconds per step on a 2-core box, so it runs 10 samples of
//! BYOL and DirectPred only; set `EDGESSL_BENCH_FULL=1` for every method and batch 128 too.

use burn::backend::{Autodiff, Flex};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use edgessl::config::TrainConfig;
use edgessl::data::synthetic::SyntheticViews;
use edgessl::model::ModelConfig;
use edgessl::ssl::{Learner, PredictorKind};
use std::time::Duration;

type B = Autodiff<Flex>;

/// `(label, predictor, target momentum)` of the benchmarked methods.
const METHODS: [(&str, PredictorKind, f64); 5] = [
    ("byol", PredictorKind::Mlp, 0.996),
    ("linear", PredictorKind::Linear, 0.996),
    ("simsiam", PredictorKind::Mlp, 0.0),
    ("directpred", PredictorKind::Directpred, 0.996),
    ("directcopy", PredictorKind::Directcopy, 0.996),
];

fn tiny() -> ModelConfig {
    ModelConfig {
        width: 8,
        image_size: 12,
        projector_hidden: 32,
        dim: 16,
        ..Default::default()
    }
}

fn bench_shape(c: &mut Criterion, group: &str, model: ModelConfig, batch: usize, methods: &[&str]) {
    let mut g = c.benchmark_group(group);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for (label, predictor, momentum) in METHODS.iter().filter(|m| methods.contains(&m.0)) {
        let mut config = TrainConfig {
            model: model.clone(),
            ..Default::default()
        };
        config.method.predictor = *predictor;
        config.method.momentum = *momentum;
        let mut learner = Learner::<B>::new(
            &config.model,
            &config.method,
            &config.optim,
            0,
            &Default::default(),
        )
        .unwrap();
        let mut views = SyntheticViews::new(model.image_size, model.in_channels, batch, 0);
        let pool: Vec<_> = (0..4).map(|_| views.next_views().unwrap()).collect();
        let mut i = 0;
        g.bench_with_input(BenchmarkId::new(*label, batch), &batch, |b, _| {
            b.iter(|| {
                i += 1;
                learner.step(&pool[i % pool.len()]).unwrap()
            })
        });
    }
    g.finish();
}

fn steps(c: &mut Criterion) {
    let all: Vec<&str> = METHODS.iter().map(|m| m.0).collect();
    bench_shape(c, "step/tiny", tiny(), 16, &all);
    let full = std::env::var_os("EDGESSL_BENCH_FULL").is_some();
    let reference = if full {
        all.clone()
    } else {
        vec!["byol", "directpred"]
    };
    bench_shape(c, "step/compact28", ModelConfig::default(), 32, &reference);
    if full {
        bench_shape(c, "step/compact28", ModelConfig::default(), 128, &all);
    }
}

criterion_group! {
    name = benches;
    // No plots: plotters' SVG text rendering fails on machines without the fonts it expects.
    config = Criterion::default().without_plots();
    targets = steps
}
criterion_main!(benches);
