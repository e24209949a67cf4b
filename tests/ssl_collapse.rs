//! The paper's collapse claim on a real (tiny) network: with a predictor and stop-gradient
//! the loss falls and the representation stays spread out; without a predictor, or with
//! gradients through the target, the trunk's outputs shrink toward a single point.

mod common;
use common::*;
use edgessl::ssl::{Learner, MethodConfig, PredictorKind};

struct Outcome {
    first_loss: f64,
    last_loss: f64,
    /// Collapse measure of the projector outputs before and after training.
    std_before: f64,
    std_after: f64,
}

/// Per-dimension std of the l2-normalised rows, averaged, times sqrt(d): ~1 for spread-out
/// outputs, 0 when every image maps to the same direction (the SimSiam paper's measure).
fn normalised_std(v: &[f32], n: usize, d: usize) -> f64 {
    let rows: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            let r: Vec<f64> = v[i * d..(i + 1) * d].iter().map(|x| *x as f64).collect();
            let norm = r.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
            r.iter().map(|x| x / norm).collect()
        })
        .collect();
    let mut total = 0.0;
    for j in 0..d {
        let mean = rows.iter().map(|r| r[j]).sum::<f64>() / n as f64;
        total += (rows.iter().map(|r| (r[j] - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
    }
    total / d as f64 * (d as f64).sqrt()
}

/// The collapse measure of the projector outputs on a held-out batch, with batch statistics
/// (what the loss sees).
fn collapse_std(learner: &Learner<B>, probe: &edgessl::data::ViewBatch) -> f64 {
    let x = learner.batch_tensor(probe).unwrap();
    let z = learner.online().encoder.forward(x).detach();
    let [n, d] = z.dims();
    normalised_std(
        &z.into_data().convert::<f32>().to_vec::<f32>().unwrap(),
        n,
        d,
    )
}

fn run(method: MethodConfig, steps: usize) -> Outcome {
    let mut optim = optim();
    optim.lr = 0.1;
    optim.weight_decay = 5e-3;
    let mut learner =
        Learner::<B>::new(&tiny_model(), &method, &optim, 7, &Default::default()).unwrap();
    let data = batches(steps, 32, 7);
    let probe = batches(1, 64, 99).remove(0);
    let std_before = collapse_std(&learner, &probe);
    let losses: Vec<f64> = data.iter().map(|b| learner.step(b).unwrap().loss).collect();
    let std_after = collapse_std(&learner, &probe);
    let avg = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    Outcome {
        first_loss: avg(&losses[..10]),
        last_loss: avg(&losses[losses.len() - 10..]),
        std_before,
        std_after,
    }
}

#[test]
fn predictor_and_stop_gradient_learn_while_ablations_collapse() {
    let steps = 150;
    let mut byol = method(PredictorKind::Mlp);
    byol.momentum = 0.99;
    let mut directpred = method(PredictorKind::Directpred);
    directpred.momentum = 0.99;
    let mut none = method(PredictorKind::None);
    none.momentum = 0.99;
    let mut no_stop = method(PredictorKind::Directpred);
    no_stop.stop_gradient = false;
    let [byol, directpred, none, no_stop] =
        [byol, directpred, none, no_stop].map(|m| run(m, steps));
    for (name, o) in [
        ("byol", &byol),
        ("directpred", &directpred),
        ("none", &none),
        ("no-stop-gradient", &no_stop),
    ] {
        eprintln!(
            "{name}: loss {:.3} -> {:.3}, collapse std {:.3} -> {:.3}",
            o.first_loss, o.last_loss, o.std_before, o.std_after
        );
    }
    // With a predictor and stop-gradient: the loss falls and the outputs stay spread out.
    for (name, o) in [("byol", &byol), ("directpred", &directpred)] {
        assert!(
            o.last_loss < 0.7 * o.first_loss,
            "{name}: loss did not fall"
        );
        assert!(
            o.std_after > 0.45,
            "{name}: representation collapsed ({:.3})",
            o.std_after
        );
    }
    // Without stop-gradient: a trivial solution, every output in one direction.
    assert!(
        no_stop.last_loss < 0.01,
        "no stop-gradient: loss should reach the trivial 0"
    );
    assert!(
        no_stop.std_after < 0.05,
        "no stop-gradient did not collapse ({:.3})",
        no_stop.std_after
    );
    // Without a predictor: the spread shrinks well below its start and below BYOL's.
    assert!(
        none.std_after < 0.5 * none.std_before,
        "no predictor: spread did not shrink"
    );
    assert!(
        none.std_after < 0.5 * byol.std_after,
        "no predictor: not below half of BYOL's spread"
    );
}
