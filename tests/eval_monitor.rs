//! Monitors, the training log, the collapse guard and the plot entry point.

use edgessl::monitor::{
    CollapseGuard, GuardDecision, LogRecord, LogWriter, MonitorSnapshot, collapse_std,
    effective_rank, effective_rank_of, eigen_alignment, output_correlation, read_jsonl, write_csv,
};
use edgessl::plot::{ImageFormat, plot_training_log};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

fn gaussian(rng: &mut impl Rng) -> f64 {
    let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut c = vec![0.0; n * n];
    for i in 0..n {
        for k in 0..n {
            for j in 0..n {
                c[i * n + j] += a[i * n + k] * b[k * n + j];
            }
        }
    }
    c
}

/// A random symmetric positive semi-definite `F = A Aᵀ`.
fn random_f(n: usize, rng: &mut impl Rng) -> Vec<f64> {
    let a: Vec<f64> = (0..n * n).map(|_| gaussian(rng)).collect();
    let mut at = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            at[j * n + i] = a[i * n + j];
        }
    }
    matmul(&a, &at, n)
}

#[test]
fn polynomial_of_f_is_perfectly_aligned() {
    let n = 10;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    let f = random_f(n, &mut rng);
    let f2 = matmul(&f, &f, n);
    // Wp = 0.01 F² + 0.5 F + I: positive on every eigenvector of F.
    let wp: Vec<f64> = (0..n * n)
        .map(|k| 0.01 * f2[k] + 0.5 * f[k] + if k % (n + 1) == 0 { 1.0 } else { 0.0 })
        .collect();
    let r = eigen_alignment(&f, &wp, n, n).unwrap();
    assert_eq!(r.per_mode.len(), n);
    assert!(
        r.per_mode.iter().all(|c| (c - 1.0).abs() < 1e-9),
        "{:?}",
        r.per_mode
    );
    assert!(r.commutator < 1e-12 && r.asymmetry < 1e-12);
    assert!(r.f_eigenvalues.windows(2).all(|w| w[0] >= w[1]));
}

#[test]
fn random_predictor_is_not_aligned() {
    let n = 10;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let f = random_f(n, &mut rng);
    let wp: Vec<f64> = (0..n * n).map(|_| gaussian(&mut rng)).collect();
    let r = eigen_alignment(&f, &wp, n, 4).unwrap();
    assert_eq!(r.per_mode.len(), 4);
    assert!(r.mean < 0.9, "mean alignment {}", r.mean);
    assert!(r.commutator > 0.05 && r.asymmetry > 0.5);
}

#[test]
fn alignment_rejects_bad_shapes() {
    assert!(eigen_alignment(&[1.0; 4], &[1.0; 9], 2, 1).is_err());
    assert!(eigen_alignment(&[f64::NAN; 4], &[1.0; 4], 2, 1).is_err());
    assert!(eigen_alignment(&[1.0; 4], &[1.0; 4], 2, 0).is_err());
}

#[test]
fn effective_rank_counts_used_dimensions() {
    let d = 7;
    let mut eye = vec![0.0; d * d];
    (0..d).for_each(|i| eye[i * d + i] = 1.0);
    assert!((effective_rank_of(&eye, d).unwrap() - d as f64).abs() < 1e-9);
    assert!((effective_rank(&[5.0, 0.0, 0.0, -1e-12]) - 1.0).abs() < 1e-12);
    assert_eq!(effective_rank(&[0.0, 0.0]), 0.0);
}

#[test]
fn collapse_std_separates_collapsed_from_isotropic() {
    let (n, d) = (4000, 32);
    let constant: Vec<f32> = (0..n * d).map(|k| (k % d) as f32 + 1.0).collect();
    assert!(collapse_std(&constant, n, d).unwrap() < 1e-6);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(2);
    let iso: Vec<f32> = (0..n * d).map(|_| gaussian(&mut rng) as f32).collect();
    let s = collapse_std(&iso, n, d).unwrap();
    assert!((s - 1.0).abs() < 0.05, "isotropic spread {s}");
    assert!(collapse_std(&iso, n, d + 1).is_err());
}

fn record(step: u64, collapse: f64) -> LogRecord {
    LogRecord {
        step,
        epoch: step / 100,
        loss: 2.0 / (1.0 + step as f64),
        images_per_sec: 120.0,
        lr: 0.05,
        knn_top1: step.is_multiple_of(200).then_some(0.5 + step as f64 * 1e-4),
        alignment_mean: Some(1.0 - 1.0 / (1.0 + step as f64)),
        commutator: Some(1.0 / (1.0 + step as f64)),
        asymmetry: Some(0.01),
        collapse_std: Some(collapse),
        effective_rank: Some(30.0),
        f_eigenvalues: Some((0..16).map(|i| (-(i as f64) * 0.5).exp()).collect()),
        wp_eigenvalues: Some((0..16).map(|i| 1.0 - i as f64 * 0.05).collect()),
        wall_secs: step as f64 * 0.5,
    }
}

fn assert_close(a: &serde_json::Value, b: &serde_json::Value) {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!((x - y).abs() <= 1e-15 * x.abs().max(y.abs()), "{x} vs {y}");
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).for_each(|(p, q)| assert_close(p, q));
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>());
            x.values()
                .zip(y.values())
                .for_each(|(p, q)| assert_close(p, q));
        }
        _ => assert_eq!(a, b),
    }
}

#[test]
fn log_round_trips_through_jsonl_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.jsonl");
    let recs: Vec<LogRecord> = (0..5).map(|i| record(i * 100, 0.9)).collect();
    let mut w = LogWriter::create(&path).unwrap();
    for r in &recs {
        w.write(r).unwrap();
    }
    drop(w);
    // serde_json's default float parser may differ from the written value in the last bit
    // (exact round trips need its `float_roundtrip` feature): compare to 1 ulp-ish.
    let back = read_jsonl(&path).unwrap();
    assert_eq!(back.len(), recs.len());
    for (a, b) in back.iter().zip(&recs) {
        let (ja, jb) = (
            serde_json::to_value(a).unwrap(),
            serde_json::to_value(b).unwrap(),
        );
        assert_close(&ja, &jb);
    }
    // Minimal records (only required fields) parse too.
    std::fs::write(&path, "{\"step\":1,\"epoch\":0,\"loss\":1.5,\"images_per_sec\":3,\"lr\":0.1,\"wall_secs\":2}\n\nnot json\n").unwrap();
    let err = format!("{:#}", read_jsonl(&path).unwrap_err());
    assert!(err.contains(":3"), "error should name line 3: {err}");
    let csv = dir.path().join("log.csv");
    write_csv(&recs, &csv).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), 6);
    assert!(text.starts_with("step,epoch,loss"));
    let mut bad = record(0, 1.0);
    bad.loss = f64::NAN;
    assert!(
        LogWriter::create(dir.path().join("x.jsonl"))
            .unwrap()
            .write(&bad)
            .is_err()
    );
}

#[test]
fn collapse_guard_warns_then_stops_and_resets() {
    let mut g = CollapseGuard::new(0.1, 3);
    assert_eq!(g.observe(0.8, None), GuardDecision::Continue);
    assert!(matches!(g.observe(0.01, None), GuardDecision::Warn(_)));
    assert!(matches!(g.observe(0.01, None), GuardDecision::Warn(_)));
    assert_eq!(
        g.observe(0.5, None),
        GuardDecision::Continue,
        "recovery resets the count"
    );
    assert_eq!(g.strikes(), 0);
    for _ in 0..2 {
        assert!(matches!(g.observe(0.0, None), GuardDecision::Warn(_)));
    }
    assert!(matches!(g.observe(0.0, None), GuardDecision::Stop(_)));
    let mut g = CollapseGuard::new(0.1, 2).with_min_effective_rank(2.0);
    assert!(matches!(g.observe(0.9, Some(1.1)), GuardDecision::Warn(_)));
    let mut nan = record(5, 0.9);
    nan.loss = f64::NAN;
    assert!(matches!(g.observe_record(&nan), GuardDecision::Stop(_)));
}

#[test]
fn plots_are_written_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let recs: Vec<LogRecord> = (0..30)
        .map(|i| record(i * 20, 1.0 - i as f64 * 0.01))
        .collect();
    for format in [ImageFormat::Png, ImageFormat::Svg] {
        let out = dir.path().join(format.extension());
        let files = plot_training_log(&recs, &out, format, None).unwrap();
        assert_eq!(files.len(), 5, "{files:?}");
        for f in files {
            assert!(
                std::fs::metadata(&f).unwrap().len() > 1000,
                "{}",
                f.display()
            );
        }
    }
    assert!(plot_training_log(&[], dir.path(), ImageFormat::Png, None).is_err());
    let mut bare = record(0, 1.0);
    bare.f_eigenvalues = None;
    bare.wp_eigenvalues = None;
    assert!(plot_training_log(&[bare], dir.path(), ImageFormat::Png, Some(3)).is_err());
}

#[test]
fn snapshot_fills_a_log_record() {
    let (n, d) = (500, 8);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    let z: Vec<f32> = (0..n * d).map(|_| gaussian(&mut rng) as f32).collect();
    let f = output_correlation(&z, n, d).unwrap();
    assert!((f[0] - 1.0).abs() < 0.2 && f[1] == f[d]);
    let wp: Vec<f64> = f.iter().map(|v| 2.0 * v).collect();
    let snap = MonitorSnapshot::measure(&f, Some(&wp), d, d, Some((&z, n))).unwrap();
    let mut rec = LogRecord::default();
    snap.fill(&mut rec, true);
    assert!((rec.alignment_mean.unwrap() - 1.0).abs() < 1e-9);
    assert!(rec.commutator.unwrap() < 1e-12);
    assert!(rec.effective_rank.unwrap() > 6.0);
    assert!((rec.collapse_std.unwrap() - 1.0).abs() < 0.1);
    assert_eq!(rec.f_eigenvalues.as_ref().unwrap().len(), d);
    assert!(output_correlation(&z, n, d + 1).is_err());
}
