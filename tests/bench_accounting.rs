//! The memory accounting model and the batch picker: exact parameter counts, linear growth in
//! the batch, the ordering of methods, and `largest_batch` against the budget.

mod common;
use burn::module::Module;
use common::*;
use edgessl::bench::accounting::{ParamCounts, estimate};
use edgessl::bench::{BudgetError, largest_batch};
use edgessl::config::TrainConfig;
use edgessl::model::ModelConfig;
use edgessl::ssl::{Learner, MethodConfig, OptimConfig, PredictorKind};

const MIB: u64 = 1024 * 1024;

fn method_of(predictor: PredictorKind, momentum: f64) -> MethodConfig {
    MethodConfig {
        predictor,
        momentum,
        ..Default::default()
    }
}

#[test]
fn parameter_counts_match_burn_for_every_predictor() {
    for predictor in [
        PredictorKind::Mlp,
        PredictorKind::Linear,
        PredictorKind::Directpred,
        PredictorKind::Directcopy,
        PredictorKind::None,
    ] {
        let m = tiny_model();
        let me = method(predictor);
        let learner = Learner::<B>::new(&m, &me, &optim(), 0, &Default::default()).unwrap();
        let counts = ParamCounts::new(&m, &me);
        assert_eq!(
            counts.online_total(),
            learner.online().num_params() as u64,
            "{predictor:?}"
        );
        let target = learner
            .target()
            .expect("EMA methods keep a target")
            .num_params() as u64;
        assert_eq!(
            counts.encoder + counts.encoder_buffers,
            target,
            "{predictor:?} target"
        );
    }
}

#[test]
fn parameter_counts_match_burn_for_resnet18() {
    let m = ModelConfig {
        trunk: edgessl::model::TrunkKind::Resnet18,
        width: 8,
        image_size: 16,
        in_channels: 3,
        ..tiny_model()
    };
    let me = method(PredictorKind::Mlp);
    let learner = Learner::<B>::new(&m, &me, &optim(), 0, &Default::default()).unwrap();
    assert_eq!(
        ParamCounts::new(&m, &me).online_total(),
        learner.online().num_params() as u64
    );
}

#[test]
fn accounting_grows_linearly_in_the_batch() {
    let model = ModelConfig::default();
    for me in [
        method_of(PredictorKind::Mlp, 0.99),
        method_of(PredictorKind::Directpred, 0.99),
        method_of(PredictorKind::Mlp, 0.0),
    ] {
        let at = |b: usize| estimate(&model, &me, &OptimConfig::default(), b, 0).total() as i64;
        let step = at(64) - at(32);
        assert!(step > 0, "memory must grow with the batch");
        for (lo, hi) in [(2, 34), (32, 64), (64, 96), (128, 160)] {
            // The float map count rounds to whole bytes once per estimate.
            assert!(
                (at(hi) - at(lo) - step).abs() <= 2,
                "{lo}..{hi} of {}",
                me.label()
            );
        }
    }
}

#[test]
fn byol_exceeds_directpred_by_at_least_its_predictor_and_optimizer_state() {
    let model = ModelConfig::default();
    let optim = OptimConfig::default();
    for hidden in [512, 4096] {
        let byol = MethodConfig {
            predictor_hidden: hidden,
            ..method_of(PredictorKind::Mlp, 0.99)
        };
        let dp = method_of(PredictorKind::Directpred, 0.99);
        let p = ParamCounts::new(&model, &byol).predictor * 4;
        for batch in [2, 32, 128] {
            let b = estimate(&model, &byol, &optim, batch, 0);
            let d = estimate(&model, &dp, &optim, batch, 0);
            // At least the MLP predictor's parameters and its momentum buffers (its gradients,
            // activations and the rest come on top; DirectPred's Wp and eigensolver scratch
            // are smaller than the predictor's gradients).
            assert!(
                b.total() >= d.total() + 2 * p,
                "hidden {hidden}, batch {batch}"
            );
            assert!(
                b.gradients - d.gradients == p && b.optimizer - d.optimizer == p,
                "trained predictor state"
            );
        }
    }
}

#[test]
fn simsiam_keeps_no_target_and_sgd_without_momentum_keeps_no_buffers() {
    let model = ModelConfig::default();
    let simsiam = estimate(
        &model,
        &method_of(PredictorKind::Mlp, 0.0),
        &OptimConfig::default(),
        32,
        0,
    );
    assert_eq!(simsiam.target, 0);
    let plain = OptimConfig {
        momentum: 0.0,
        ..Default::default()
    };
    assert_eq!(
        estimate(
            &model,
            &method_of(PredictorKind::Directpred, 0.99),
            &plain,
            32,
            0
        )
        .optimizer,
        0
    );
}

fn config(predictor: PredictorKind) -> TrainConfig {
    let mut c = TrainConfig::default();
    c.method.predictor = predictor;
    c
}

#[test]
fn largest_batch_is_monotonic_and_tight() {
    for predictor in [PredictorKind::Mlp, PredictorKind::Directpred] {
        let c = config(predictor);
        let mut last = 0;
        for budget_mib in [64, 100, 256, 512, 1000, 2048, 8192] {
            let budget = budget_mib * MIB;
            let b = largest_batch(&c, budget, 5 * MIB).unwrap();
            assert!(b >= last, "budget {budget_mib} MiB gave batch {b} < {last}");
            let at = |batch| estimate(&c.model, &c.method, &c.optim, batch, 5 * MIB).total();
            assert!(
                at(b) <= budget && at(b + 1) > budget,
                "batch {b} is not the largest that fits"
            );
            last = b;
        }
    }
}

#[test]
fn largest_batch_refuses_a_tiny_budget_clearly() {
    let c = config(PredictorKind::Directpred);
    let err = largest_batch(&c, 8 * MIB, 5 * MIB).unwrap_err();
    let BudgetError::TooSmall {
        min_batch,
        needed_mib,
        ..
    } = &err;
    assert_eq!(*min_batch, 2);
    assert!(*needed_mib > 8.0);
    let msg = err.to_string();
    assert!(
        msg.contains("too small") && msg.contains("batch 2") && msg.contains("directpred"),
        "{msg}"
    );
}
