//! Exact resume: 2N steps in one go equal N steps, a state round trip, and N more steps.

mod common;
use burn::module::AutodiffModule;
use common::*;
use edgessl::checkpoint::{PayloadKind, decode_bytes, encode_bytes};
use edgessl::model::named::named_tensors;
use edgessl::ssl::state::LearnerState;
use edgessl::ssl::{Learner, PredictorKind};

fn weights(learner: &Learner<B>) -> Vec<(String, Vec<f32>)> {
    let mut all: Vec<_> = named_tensors(&learner.online().valid(), "online")
        .into_iter()
        .chain(
            learner
                .target()
                .map(|t| named_tensors(&t.valid(), "target"))
                .unwrap_or_default(),
        )
        .map(|t| (t.name.clone(), t.data.to_f32_vec()))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

fn check(kind: PredictorKind, momentum: f64) {
    let n = 3;
    let mut method = method(kind);
    method.momentum = momentum;
    let data = batches(2 * n, 8, 11);
    let device = Default::default();

    let mut straight = Learner::<B>::new(&tiny_model(), &method, &optim(), 5, &device).unwrap();
    // The second run starts from the same initial state. (Seeding again would not do: burn's
    // seed is global, and tests on other threads draw from it concurrently.)
    let initial = straight.state();
    for b in &data {
        straight.step(b).unwrap();
    }

    let mut first =
        Learner::<B>::from_state(&tiny_model(), &method, &optim(), &initial, &device).unwrap();
    for b in &data[..n] {
        first.step(b).unwrap();
    }
    // Through the real checkpoint encoding.
    let bytes = encode_bytes(PayloadKind::Checkpoint, &first.state()).unwrap();
    drop(first);
    let state: LearnerState = decode_bytes(&bytes, PayloadKind::Checkpoint).unwrap();
    let mut resumed =
        Learner::<B>::from_state(&tiny_model(), &method, &optim(), &state, &device).unwrap();
    assert_eq!(resumed.step_count(), n as u64);
    for b in &data[n..] {
        resumed.step(b).unwrap();
    }
    let (a, b) = (weights(&straight), weights(&resumed));
    assert_eq!(a.len(), b.len());
    let differing: Vec<String> = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| x != y)
        .map(|(x, y)| {
            let diff =
                x.1.iter()
                    .zip(&y.1)
                    .map(|(p, q)| (p - q).abs())
                    .fold(0f32, f32::max);
            format!("{} (max diff {diff:e})", x.0)
        })
        .collect();
    assert!(
        differing.is_empty(),
        "{kind:?}: resumed weights differ: {differing:?}"
    );
    assert_eq!(straight.correlation, resumed.correlation);
    assert_eq!(straight.predictor_matrix(), resumed.predictor_matrix());
}

#[test]
fn resume_is_bitwise_exact_for_directpred() {
    check(PredictorKind::Directpred, 0.99);
}

#[test]
fn resume_is_bitwise_exact_for_byol() {
    check(PredictorKind::Mlp, 0.99);
}

#[test]
fn resume_is_bitwise_exact_for_simsiam_linear() {
    check(PredictorKind::Linear, 0.0);
}

#[test]
fn a_state_from_another_model_is_refused() {
    let device = Default::default();
    let learner = Learner::<B>::new(
        &tiny_model(),
        &method(PredictorKind::Directpred),
        &optim(),
        1,
        &device,
    )
    .unwrap();
    let state = learner.state();
    let mut other = tiny_model();
    other.dim = 24;
    let err = Learner::<B>::from_state(
        &other,
        &method(PredictorKind::Directpred),
        &optim(),
        &state,
        &device,
    )
    .err()
    .expect("mismatched dims must be refused")
    .to_string();
    assert!(err.contains("does not match"), "{err}");
}
