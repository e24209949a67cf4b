//! Timing of kNN and the linear probe at Fashion-MNIST scale (60k train × 10k test, d = 128).
//! Ignored by default (tens of seconds on 2 cores); run with
//! `cargo test --release --features ndarray,candle --test eval_speed -- --ignored --nocapture`.

use edgessl::eval::{KnnConfig, LabeledFeatures, ProbeConfig, knn_classify, linear_probe};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::time::Instant;

fn features(n: usize, d: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut x = Vec::with_capacity(n * d);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let c = (i % 10) as u32;
        // Class signal on a few dimensions plus uniform noise: moderately hard.
        x.extend((0..d).map(|j| {
            let centre = if j % 10 == c as usize { 1.0 } else { 0.0 };
            centre + 8.0 * (rng.random::<f32>() - 0.5)
        }));
        y.push(c);
    }
    (x, y)
}

#[test]
#[ignore]
fn knn_and_probe_at_fashion_mnist_scale() {
    let d = 128;
    let (xtr, ytr) = features(60_000, d, 1);
    let (xte, yte) = features(10_000, d, 2);
    let train = LabeledFeatures::new(&xtr, &ytr, d, "train").unwrap();
    let test = LabeledFeatures::new(&xte, &yte, d, "test").unwrap();

    let t = Instant::now();
    let knn = knn_classify(train, test, &KnnConfig::default()).unwrap();
    println!(
        "kNN 60k x 10k x {d}: {:.1} s, top-1 {:.4}, top-5 {:.4}",
        t.elapsed().as_secs_f64(),
        knn.top1,
        knn.top5
    );

    let t = Instant::now();
    let probe = linear_probe(train, test, &ProbeConfig::default()).unwrap();
    println!(
        "probe 60k x {d}, 50 epochs: {:.1} s, final {:.4}, best {:.4} (epoch {})",
        t.elapsed().as_secs_f64(),
        probe.final_top1,
        probe.best_top1,
        probe.best_epoch
    );
}
