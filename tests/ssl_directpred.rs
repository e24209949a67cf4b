//! The eigensolver, the DirectPred and DirectCopy formulas, and the F estimate.

mod common;
use common::*;
use edgessl::ssl::CorrelationEstimate;
use edgessl::ssl::directcopy::DirectCopy;
use edgessl::ssl::directpred::DirectPred;
use edgessl::ssl::set_from_correlation::CorrelationToPredictor;
use edgessl::ssl::symmetric_eigen::SymmetricEigen;

#[test]
fn eigensolver_reconstructs_and_is_orthonormal_up_to_256() {
    for (d, seed) in [(2, 1), (16, 2), (128, 3), (256, 4)] {
        let raw = lcg(seed, d * d);
        // A random symmetric matrix with both signs of eigenvalues.
        let mut f = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                f[i * d + j] = raw[i * d + j] + raw[j * d + i];
            }
        }
        let eig = SymmetricEigen::new(&f, d).unwrap();
        let back = eig.reconstruct_with(|v| v);
        let scale = f.iter().map(|v| v.abs()).fold(0.0, f64::max);
        assert!(
            max_abs_diff(&back, &f) < 1e-9 * scale * d as f64,
            "d={d}: reconstruction off"
        );
        let qtq = {
            let q = &eig.vectors;
            let mut m = vec![0.0; d * d];
            for i in 0..d {
                for j in 0..d {
                    m[i * d + j] = (0..d).map(|k| q[k * d + i] * q[k * d + j]).sum();
                }
            }
            m
        };
        let identity: Vec<f64> = (0..d * d)
            .map(|k| if k % (d + 1) == 0 { 1.0 } else { 0.0 })
            .collect();
        assert!(
            max_abs_diff(&qtq, &identity) < 1e-10,
            "d={d}: Q not orthonormal"
        );
        assert!(
            eig.values.windows(2).all(|w| w[0] <= w[1]),
            "eigenvalues not ascending"
        );
    }
}

#[test]
fn eigensolver_rejects_non_finite_and_wrong_sizes() {
    assert!(SymmetricEigen::new(&[1.0, f64::NAN, f64::NAN, 1.0], 2).is_err());
    assert!(SymmetricEigen::new(&[1.0, 0.0, 0.0], 2).is_err());
}

fn correlation_of(matrix: Vec<f64>) -> CorrelationEstimate {
    let dim = (matrix.len() as f64).sqrt() as usize;
    CorrelationEstimate {
        dim,
        rho: 0.3,
        updates: 1,
        matrix,
    }
}

#[test]
fn directpred_matches_the_formula_on_a_known_spectrum() {
    let d = 12;
    let q = random_orthogonal(d, 7);
    // Includes negative eigenvalues (clamped to 0) and a zero.
    let spectrum: Vec<f64> = vec![
        4.0, 2.5, 1.0, 0.64, 0.25, 0.09, 0.01, 0.0, -0.02, -0.5, 0.3, 1.7,
    ];
    let f = compose(&q, &spectrum);
    let max = 4.0f64;
    for eps in [0.1, 0.0, 0.5] {
        let expected_p: Vec<f64> = spectrum
            .iter()
            .map(|&v| ((v.max(0.0) / max).sqrt() + eps).max(1e-4))
            .collect();
        let expected = compose(&q, &expected_p);
        let got = DirectPred { eps, freq: 1 }
            .predictor_from(&correlation_of(f.clone()))
            .unwrap();
        assert!(
            max_abs_diff(&got, &expected) < 1e-9,
            "eps={eps}: Wp differs from the formula"
        );
    }
    // With eps = 0 the clamped directions sit exactly at the 1e-4 floor.
    let got = DirectPred { eps: 0.0, freq: 1 }
        .predictor_from(&correlation_of(f))
        .unwrap();
    let eig = SymmetricEigen::new(&got, d).unwrap();
    let floor_count = eig
        .values
        .iter()
        .filter(|v| (*v - 1e-4).abs() < 1e-9)
        .count();
    assert_eq!(
        floor_count, 3,
        "the zero and two negative eigenvalues should sit at 1e-4"
    );
}

#[test]
fn directpred_on_a_collapsed_f_is_eps_identity() {
    let d = 4;
    let got = DirectPred { eps: 0.1, freq: 1 }
        .predictor_from(&correlation_of(vec![0.0; d * d]))
        .unwrap();
    for i in 0..d {
        for j in 0..d {
            let want = if i == j { 0.1 } else { 0.0 };
            assert!((got[i * d + j] - want).abs() < 1e-12);
        }
    }
}

#[test]
fn directcopy_is_normalised_f_plus_eps_identity() {
    let d = 6;
    let raw = lcg(11, d * d);
    let mut f = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..d {
            f[i * d + j] = raw[i * d + j] + raw[j * d + i];
        }
    }
    let norm = f.iter().map(|v| v * v).sum::<f64>().sqrt();
    let got = DirectCopy { eps: 0.3, freq: 1 }
        .predictor_from(&correlation_of(f.clone()))
        .unwrap();
    for i in 0..d {
        for j in 0..d {
            let want = f[i * d + j] / norm + if i == j { 0.3 } else { 0.0 };
            assert!((got[i * d + j] - want).abs() < 1e-12);
        }
    }
}

#[test]
fn correlation_ema_follows_rho() {
    let (d, n) = (5, 7);
    let z1: Vec<f32> = lcg(1, n * d).iter().map(|v| *v as f32).collect();
    let z2: Vec<f32> = lcg(2, n * d).iter().map(|v| *v as f32).collect();
    let ztz = |z: &[f32]| -> Vec<f64> {
        let mut m = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                m[i * d + j] = (0..n)
                    .map(|r| z[r * d + i] as f64 * z[r * d + j] as f64)
                    .sum::<f64>()
                    / n as f64;
            }
        }
        m
    };
    let mut f = CorrelationEstimate::new(d, 0.3);
    f.update(&z1, n);
    assert!(
        max_abs_diff(&f.matrix, &ztz(&z1)) < 1e-12,
        "first update sets F = d"
    );
    f.update(&z2, n);
    let expected: Vec<f64> = ztz(&z1)
        .iter()
        .zip(ztz(&z2))
        .map(|(a, b)| 0.3 * a + 0.7 * b)
        .collect();
    assert!(
        max_abs_diff(&f.matrix, &expected) < 1e-12,
        "F = rho F + (1 - rho) d"
    );
    assert_eq!(f.updates, 2);
}
