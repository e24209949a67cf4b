//! The step profile (`--profile-ops`) of real training steps: every phase of the learner's step
//! is there, each convolution and BatchNorm kernel is charged to the phase it ran in with one
//! call per layer per step, the kernels fit inside their phases, and the convolution FLOPs are
//! the layer's products. Also from the CLI: `bench throughput --profile-ops` prints the
//! tables and `pretrain --profile-ops` writes them into the run folder.

mod common;

use common::{B, batches, method, optim, tiny_model};
use edgessl::model::ModelConfig;
use edgessl::ssl::{Learner, PredictorKind};
use edgessl::step_profile::{self, StepProfile};

/// (convolutions, convolutions whose input needs a gradient, BatchNorms) of the trunk,
/// counted from its config: a stem, two convs per block, a 1x1 shortcut where a block changes
/// shape; one BatchNorm per convolution.
fn trunk_layers(m: &ModelConfig) -> (u64, u64, u64) {
    let t = m.trunk_config();
    let mut convs = 1;
    let mut width = t.stem_width;
    for s in &t.stages {
        for b in 0..s.blocks {
            let stride = if b == 0 { s.stride } else { 1 };
            convs += 2 + u64::from(stride != 1 || width != s.width);
            width = s.width;
        }
    }
    // The stem's input is the image: no gradient is asked for it.
    (convs, convs - 1, convs)
}

/// Layer calls of the kernels of `phase` whose op starts with `op_prefix`: a downsampling
/// block's convolution and 1x1 shortcut computed as one op (shape `… + CO k1x1`) are two.
fn calls(p: &StepProfile, phase: &str, op_prefix: &str) -> u64 {
    p.kernels
        .iter()
        .filter(|k| k.phase == phase && k.op.starts_with(op_prefix))
        .map(|k| k.calls * (1 + k.shape.matches(" + ").count() as u64))
        .sum()
}

fn profile_of(predictor: PredictorKind, steps: usize) -> StepProfile {
    let dev = Default::default();
    let model = tiny_model();
    let mut learner = Learner::<B>::new(&model, &method(predictor), &optim(), 3, &dev).unwrap();
    let data = batches(steps + 1, 6, 5);
    learner.step(&data[0]).unwrap(); // not recorded
    step_profile::start();
    for b in &data[1..] {
        learner.step(b).unwrap();
    }
    step_profile::finish::<B>(&dev).expect("a recording was started")
}

#[test]
fn every_phase_and_every_layer_kernel_of_a_directpred_step_is_recorded() {
    let steps = 3;
    let p = profile_of(PredictorKind::Directpred, steps);
    assert_eq!(p.steps, steps as u64);
    let phases: Vec<&str> = p.phases.iter().map(|p| p.phase.as_str()).collect();
    assert_eq!(
        phases,
        [
            "upload views",
            "target forward",
            "online forward",
            "F update",
            "predictor + loss",
            "backward",
            "optimizer (SGD)",
            "predictor rule",
            "EMA target",
        ]
    );
    let (convs, convs_dx, bns) = trunk_layers(&tiny_model());
    let n = steps as u64;
    for phase in ["target forward", "online forward"] {
        assert_eq!(calls(&p, phase, "conv forward"), convs * n, "{phase}");
        assert_eq!(calls(&p, phase, "batchnorm"), bns * n, "{phase}");
    }
    assert_eq!(calls(&p, "backward", "conv weight grad"), convs * n);
    assert_eq!(calls(&p, "backward", "conv input grad"), convs_dx * n);
    assert_eq!(calls(&p, "backward", "batchnorm"), bns * n);
    for phase in [
        "F update",
        "optimizer (SGD)",
        "predictor rule",
        "EMA target",
    ] {
        assert!(
            p.kernels.iter().all(|k| k.phase != phase),
            "no conv or BatchNorm runs in {phase}"
        );
    }
    // Kernels are timed inside their phase, so they cannot add up to more than it.
    for ph in &p.phases {
        assert!(ph.secs > 0.0, "{} has no time", ph.phase);
        assert!(
            p.kernel_secs(&ph.phase) <= ph.secs,
            "{}: kernels {} s > phase {} s",
            ph.phase,
            p.kernel_secs(&ph.phase),
            ph.secs
        );
    }
}

#[test]
fn convolution_flops_are_the_layer_products() {
    let p = profile_of(PredictorKind::Directpred, 2);
    let m = tiny_model();
    // The stem: 2 x 6 frames of 1 x 12 x 12 -> width 3x3, stride 1, same size.
    let stem = p
        .kernels
        .iter()
        .find(|k| k.phase == "online forward" && k.op == "conv forward")
        .expect("the stem is the first convolution");
    let (n, s) = (12, m.image_size);
    assert_eq!(stem.shape, format!("{n}x1x{s}x{s} -> {} k3x3 s1", m.width));
    let per_call = 2.0 * (n * m.width * 9 * s * s) as f64;
    assert_eq!(stem.flops, per_call * stem.calls as f64);
    assert_eq!(stem.calls, 2);
    // The weight gradient of the same layer is a product of the same size.
    let dw = p
        .kernels
        .iter()
        .find(|k| k.op == "conv weight grad" && k.shape == stem.shape)
        .expect("the stem's weight gradient");
    assert_eq!(dw.flops, stem.flops);
}

#[test]
fn simsiam_has_no_target_forward_and_nothing_is_recorded_without_a_recording() {
    let dev = Default::default();
    let mut m = method(PredictorKind::Mlp);
    m.momentum = 0.0;
    let mut learner = Learner::<B>::new(&tiny_model(), &m, &optim(), 3, &dev).unwrap();
    let data = batches(2, 6, 5);
    learner.step(&data[0]).unwrap();
    assert!(!step_profile::is_recording());
    assert!(step_profile::finish::<B>(&dev).is_none());
    step_profile::start();
    learner.step(&data[1]).unwrap();
    let p = step_profile::finish::<B>(&dev).unwrap();
    // Momentum 0: the target is the detached online output, no second forward, no EMA.
    for phase in ["target forward", "EMA target"] {
        assert!(p.phases.iter().all(|ph| ph.phase != phase), "{phase}");
    }
    assert_eq!(calls(&p, "target forward", "conv forward"), 0);
    assert!(calls(&p, "online forward", "conv forward") > 0);
}

fn edgessl(args: &[&str], out: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_edgessl"))
        .args(args)
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn bench_throughput_profile_ops_prints_the_phase_and_layer_tables() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("t.json");
    let mut args = vec!["bench", "throughput", "--methods", "directpred"];
    args.extend(common::TINY_MODEL_FLAGS);
    args.extend([
        "--batch",
        "4",
        "--warmup",
        "0",
        "--steps",
        "2",
        "--roof-n",
        "64",
        "--profile-ops",
        "--json",
    ]);
    let out = edgessl(&args, &json);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "directpred on flex: where the step goes (2 steps)",
        "directpred on flex: kernels per layer",
        "· conv weight grad",
        "· other: burn ops",
        "8x1x12x12 -> 8 k3x3 s1",
        "predictor rule",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in\n{stdout}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let profile = &report["backends"][0]["rows"][0]["profile"];
    assert_eq!(profile["steps"], 2);
    assert!(profile["kernels"].as_array().unwrap().len() > 10);
}

#[test]
fn pretrain_profile_ops_writes_the_profile_into_the_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = edgessl(
        &[
            "pretrain",
            "--data",
            "synthetic:64",
            "--width",
            "8",
            "--dim",
            "16",
            "--image-size",
            "12",
            "--batch",
            "4",
            "--steps",
            "3",
            "--no-eval",
            "--profile-ops",
            "--out",
        ],
        &run,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let md = std::fs::read_to_string(run.join("op_profile.md")).unwrap();
    assert!(md.contains("where the step goes (3 steps)"), "{md}");
    assert!(md.contains("data (read, decode, augment)"), "{md}");
    let p: StepProfile =
        serde_json::from_str(&std::fs::read_to_string(run.join("op_profile.json")).unwrap())
            .unwrap();
    assert_eq!(p.steps, 3);
    assert!(p.phases.iter().any(|ph| ph.phase.starts_with("observer")));
    assert!(stderr.contains("op profile:"), "{stderr}");
}

/// BatchNorm's kernels count the bytes of the maps their passes read and write, for the
/// profile's GB/s: a statistics pass unless the convolution before gave them, one map per
/// input and output forward; the sums (x, dy) and dx over dy backward, and BatchNorm + add +
/// ReLU's ReLU gate (y, dy, g) before them. Convolutions count FLOPs and no bytes.
#[cfg(feature = "flex")]
#[test]
fn batchnorm_kernels_count_the_maps_their_passes_touch() {
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::ops::ConvOptions;
    use burn::tensor::{Distribution, Tensor};
    use edgessl::ops;
    type A = Autodiff<Flex>;
    let dev = Default::default();
    let dims = [3, 4, 5, 6];
    let map = (dims.iter().product::<usize>() * 4) as f64;
    let rand = |d: [usize; 4]| Tensor::<A, 4>::random(d, Distribution::Normal(0., 1.), &dev);
    let gamma = || Tensor::<A, 1>::ones([4], &dev).require_grad();
    let beta = || Tensor::<A, 1>::zeros([4], &dev).require_grad();

    step_profile::start();
    let x = rand(dims).require_grad();
    let (y, _, _) = ops::batch_norm_relu_train(x.clone(), Some(gamma()), Some(beta()), 1e-5, None);
    let r = rand(dims).require_grad();
    let (z, _, _) = ops::batch_norm_add_relu_train(y, r, gamma(), beta(), 1e-5, None);
    // A convolution that hands its output's statistics on: no statistics pass after it.
    let w = Tensor::<A, 4>::random([4, 4, 3, 3], Distribution::Normal(0., 0.3), &dev);
    let (c, stats) = ops::conv2d_with_stats(
        z,
        w.require_grad(),
        ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
    );
    assert!(
        stats.is_some(),
        "the fast convolution gives its output's statistics on flex"
    );
    let (out, _, _) = ops::batch_norm_relu_train(c, Some(gamma()), Some(beta()), 1e-5, stats);
    let _ = out.sum().backward();
    let p = step_profile::finish::<A>(&dev).expect("recording");

    let maps = |op: &str| -> Vec<f64> {
        p.kernels
            .iter()
            .filter(|k| k.op == op)
            .map(|k| {
                assert_eq!(k.flops, 0.0, "{op}: BatchNorm counts no FLOPs");
                k.bytes / map
            })
            .collect()
    };
    // Both BN + ReLU forwards have one shape and share a row: 3 maps, then 2 with stats.
    assert_eq!(maps("batchnorm+relu forward"), [3.0 + 2.0]);
    assert_eq!(maps("batchnorm+add+relu forward"), [4.0]);
    assert_eq!(maps("batchnorm+relu backward"), [5.0 + 5.0]);
    assert_eq!(maps("batchnorm+add+relu backward"), [7.0]);
    for k in p.kernels.iter().filter(|k| k.op.starts_with("conv")) {
        assert!(k.flops > 0.0 && k.bytes == 0.0, "{}: {k:?}", k.op);
    }
}
