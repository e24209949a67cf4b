//! What one training step must and must not change.

mod common;
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use common::*;
use edgessl::ssl::{Learner, PredictorKind, PredictorNet};

/// Every float parameter's id, values and whether it trains, in visit order.
struct Snapshot<BK: Backend> {
    params: Vec<(ParamId, Vec<f32>, bool)>,
    _b: std::marker::PhantomData<BK>,
}

impl<BK: Backend> ModuleVisitor<BK> for Snapshot<BK> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<BK, D>>) {
        let v = param.val();
        let grad = v.is_require_grad();
        let data = v.into_data().convert::<f32>().to_vec::<f32>().unwrap();
        self.params.push((param.id, data, grad));
    }
}

/// Ids and grad flags from the autodiff module; values through `valid()`, which syncs the
/// BatchNorm running statistics (a plain visit can see them stale).
fn snapshot<M: AutodiffModule<B>>(m: &M) -> Vec<(ParamId, Vec<f32>, bool)> {
    let mut flags = Snapshot::<B> {
        params: Vec::new(),
        _b: Default::default(),
    };
    m.visit(&mut flags);
    let mut values = Snapshot::<<B as burn::tensor::backend::AutodiffBackend>::InnerBackend> {
        params: Vec::new(),
        _b: Default::default(),
    };
    m.valid().visit(&mut values);
    flags
        .params
        .into_iter()
        .zip(values.params)
        .map(|((id, _, g), (_, v, _))| (id, v, g))
        .collect()
}

#[test]
fn target_moves_only_by_the_ema_rule_and_gets_no_gradient() {
    let momentum = 0.9;
    let mut method = method(PredictorKind::Mlp);
    method.momentum = momentum;
    let mut learner =
        Learner::<B>::new(&tiny_model(), &method, &optim(), 1, &Default::default()).unwrap();
    for (step, batch) in batches(3, 8, 1).iter().enumerate() {
        let target_before = snapshot(learner.target().unwrap());
        learner.step(batch).unwrap();
        let target_after = snapshot(learner.target().unwrap());
        let online_after = snapshot(&learner.online().encoder);
        assert_eq!(target_before.len(), online_after.len());
        let mut averaged = 0;
        for ((before, after), online) in target_before.iter().zip(&target_after).zip(&online_after)
        {
            assert!(!after.2, "a target parameter requires grad");
            if online.2 {
                // A trained parameter: θt' = m θt + (1 − m) θo' (θo' after the optimiser step).
                for ((t, t2), o) in before.1.iter().zip(&after.1).zip(&online.1) {
                    let want = momentum as f32 * t + (1.0 - momentum as f32) * o;
                    assert!(
                        (t2 - want).abs() <= 1e-5 * (1.0 + want.abs()),
                        "EMA rule broken"
                    );
                }
                averaged += 1;
            } else if step > 0 {
                // BatchNorm running statistics are the target's own, not averaged from online
                // (on the first step both networks are still copies and see the same batch).
                assert_ne!(after.1, online.1, "running stats were copied from online");
            }
        }
        // Exact EMA equality above means no optimiser update (hence no gradient) touched them.
        assert!(averaged > 10);
    }
}

#[test]
fn online_trained_parameters_change_and_hold_momentum() {
    let mut learner = Learner::<B>::new(
        &tiny_model(),
        &method(PredictorKind::Mlp),
        &optim(),
        2,
        &Default::default(),
    )
    .unwrap();
    let before = snapshot(learner.online());
    learner.step(&batches(1, 8, 2)[0]).unwrap();
    let after = snapshot(learner.online());
    let held = learner.optimizer_state_ids();
    for (b, a) in before.iter().zip(&after) {
        if b.2 {
            assert_ne!(b.1, a.1, "a trained parameter did not move");
            assert!(
                held.contains(&b.0),
                "no momentum buffer for a trained parameter"
            );
        }
    }
}

fn predictor_weight(learner: &Learner<B>) -> (ParamId, Vec<f64>) {
    match learner.online().predictor.as_ref().unwrap() {
        PredictorNet::Linear(l) => (l.weight.id, learner.predictor_matrix().unwrap()),
        _ => panic!("DirectPred uses a linear predictor"),
    }
}

#[test]
fn directpred_sets_wp_only_every_freq_steps_and_never_trains_it() {
    let mut method = method(PredictorKind::Directpred);
    method.freq = 3;
    let mut learner =
        Learner::<B>::new(&tiny_model(), &method, &optim(), 3, &Default::default()).unwrap();
    let dp = edgessl::ssl::directpred::DirectPred {
        eps: method.eps(),
        freq: 3,
    };
    let (id0, mut previous) = predictor_weight(&learner);
    for (step, batch) in batches(7, 8, 3).iter().enumerate() {
        learner.step(batch).unwrap();
        let (id, wp) = predictor_weight(&learner);
        assert_eq!(id, id0, "setting Wp must keep the parameter id");
        if step % 3 == 0 {
            use edgessl::ssl::set_from_correlation::CorrelationToPredictor;
            let expected = dp.predictor_from(&learner.correlation).unwrap();
            // Stored as f32.
            assert!(
                max_abs_diff(&wp, &expected) < 1e-6,
                "step {step}: Wp is not the formula of F"
            );
        } else {
            assert_eq!(wp, previous, "step {step}: Wp changed between settings");
        }
        previous = wp;
        assert!(
            !learner.optimizer_state_ids().contains(&id0),
            "optimiser holds state for Wp"
        );
    }
    // Wp is symmetric.
    let d = tiny_model().dim;
    for i in 0..d {
        for j in 0..d {
            assert!((previous[i * d + j] - previous[j * d + i]).abs() < 1e-6);
        }
    }
    // And it is not a parameter that autodiff tracks.
    let inner = learner.online().valid();
    assert!(inner.predictor.is_some());
}

#[test]
fn symmetric_linear_predictor_stays_symmetric_and_trains() {
    let mut method = method(PredictorKind::Linear);
    method.symmetric = true;
    let mut learner =
        Learner::<B>::new(&tiny_model(), &method, &optim(), 4, &Default::default()).unwrap();
    let (id, w0) = predictor_weight(&learner);
    for batch in batches(2, 8, 4) {
        learner.step(&batch).unwrap();
    }
    let (_, w) = predictor_weight(&learner);
    assert_ne!(w, w0);
    let d = tiny_model().dim;
    for i in 0..d {
        for j in 0..d {
            assert!((w[i * d + j] - w[j * d + i]).abs() < 1e-6, "not symmetric");
        }
    }
    assert!(
        learner.optimizer_state_ids().contains(&id),
        "a trained predictor has momentum"
    );
}

#[test]
fn simsiam_keeps_no_target_copy() {
    let mut method = method(PredictorKind::Mlp);
    method.momentum = 0.0;
    let mut learner =
        Learner::<B>::new(&tiny_model(), &method, &optim(), 5, &Default::default()).unwrap();
    assert!(learner.target().is_none());
    let loss = learner.step(&batches(1, 8, 5)[0]).unwrap().loss;
    assert!(loss.is_finite() && (0.0..=8.0).contains(&loss));
}

#[test]
fn a_batch_of_the_wrong_shape_is_an_error() {
    let mut learner = Learner::<B>::new(
        &tiny_model(),
        &method(PredictorKind::Directpred),
        &optim(),
        6,
        &Default::default(),
    )
    .unwrap();
    let mut batch = batches(1, 4, 6).remove(0);
    batch.channels = 3;
    let err = learner.step(&batch).unwrap_err().to_string();
    assert!(err.contains("does not match the model input"), "{err}");
    // The learner is still usable after the error.
    let ok = batches(1, 4, 6).remove(0);
    learner.step(&ok).unwrap();
}
