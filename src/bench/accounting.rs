//! The memory accounting model: how many bytes one training step holds at its peak, counted
//! from layer shapes, so a batch size can be chosen for a device before anything runs.
//!
//! The model follows what the step keeps for the backward pass in *this* code base on the
//! fast-op path (`src/ops`, flex; `model/norm.rs`, `model/block.rs`, `ssl/learner.rs`), per
//! image of the `2B` that go through the online network as one batch:
//! - a conv keeps its input, borrowed from the tensor that produced it (counted once, where it
//!   is produced, however many convolutions read it);
//! - a fused BatchNorm (+ ReLU) keeps its input; its output is the next conv's input;
//! - a block's `conv2(relu(bn1(·)))` is one op that normalises inside the convolution's
//!   input read, so it keeps only bn1's input: the normalised map is never stored;
//! - a block's end `relu(BN(y) + shortcut)` (one fused op) keeps its BatchNorm input and its
//!   output, which is the next block's input (the ReLU mask comes from it);
//! - global average pooling keeps nothing (`mean_dim` needs only the shape).
//!
//! So the stem keeps 2 maps (+ the image), a basic block 3 maps of its output shape, and a
//! downsample shortcut one more (its BN input). On top of the saved maps the step needs a
//! *transient* working set: gradient maps of the layer being differentiated, im2col tiles,
//! the target network's forward pass. That is modelled as copies of the largest feature map:
//! [`BACKWARD_TRANSIENT_MAPS`] without a target network, [`TARGET_FORWARD_TRANSIENT_MAPS`]
//! with one, plus [`RUNTIME_OVERHEAD_BYTES`]; calibrated on this machine.
//!
//! Everything else is exact element counts: parameters, gradients, SGD momentum buffers,
//! the target network, F, the eigendecomposition workspace. A constant process baseline
//! (binary, shared libraries, allocator, thread stacks) is measured, not derived.

use crate::model::{ModelConfig, TrunkConfig};
use crate::ssl::{MethodConfig, OptimConfig, PredictorKind};
use serde::{Deserialize, Serialize};

/// Bytes of an f32.
const F32: u64 = 4;
/// Bytes of an f64 (F and the eigensolver work in f64).
const F64: u64 = 8;

/// Largest-map copies alive on top of the saved activations at the backward peak (gradient
/// of the current layer's output and input maps), for methods without a target network.
/// Fit on flex (see [`RUNTIME_OVERHEAD_BYTES`]). It was 2.3 before a block's end (BatchNorm,
/// shortcut add, ReLU) became one fused op: the add's and the ReLU's maps and gradients went.
pub const BACKWARD_TRANSIENT_MAPS: f64 = 0.6;

/// The same for methods with a target network. The learner runs the target's forward pass
/// *before* the online one and keeps only its outputs, so the target adds its parameters but
/// no feature maps to the peak; the fit comes out a little above the no-target value.
pub const TARGET_FORWARD_TRANSIENT_MAPS: f64 = 0.68;

/// Memory that appears once training starts and does not scale with the batch: code pages of
/// the kernels, rayon worker threads and their malloc arenas, first gradient bookkeeping.
///
/// The three constants were fit on this 2-vCPU box (flex, 2 threads, compact trunk, 28 px
/// gray, fused BatchNorm+ReLU and block ends, borrowed host buffers) to the measured peaks of
/// SimSiam (no target) and BYOL (target) at batch 32 and 128; other shapes and methods are a
/// check of the model, not of the fit (see the bench report). When a block's BatchNorm + ReLU
/// moved into its second convolution (3 saved maps per block, was 4) the model kept within
/// −3.0…+1.8 % of the new peaks with these constants unchanged.
pub const RUNTIME_OVERHEAD_BYTES: u64 = 13 * 1024 * 1024;

/// Process baseline measured on the 2-vCPU CI-like box with the flex backend: VmHWM of the
/// `edgessl` binary before any model is built (binary, libraries, allocator). Devices differ;
/// `bench memory` measures it in every child and uses the measured value.
pub const DEFAULT_BASELINE_BYTES: u64 = 5 * 1024 * 1024;

/// Parameter counts of the networks a method keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamCounts {
    /// Trainable parameters of the encoder (trunk + projector).
    pub encoder: u64,
    /// BatchNorm running statistics of the encoder (not trained, kept in each copy).
    pub encoder_buffers: u64,
    /// Parameters of the predictor (trained or set from F).
    pub predictor: u64,
    /// BatchNorm running statistics of the predictor.
    pub predictor_buffers: u64,
}

impl ParamCounts {
    /// Counts for a model and method, from the layer shapes.
    pub fn new(model: &ModelConfig, method: &MethodConfig) -> Self {
        let trunk = model.trunk_config();
        let (mut encoder, mut encoder_buffers) = trunk_params(&trunk);
        let (head, head_buffers) =
            mlp_head_params(trunk.out_dim(), model.projector_hidden, model.dim);
        encoder += head;
        encoder_buffers += head_buffers;
        let d = model.dim as u64;
        let (predictor, predictor_buffers) = match method.predictor {
            PredictorKind::Mlp => mlp_head_params(model.dim, method.predictor_hidden, model.dim),
            PredictorKind::Linear | PredictorKind::Directpred | PredictorKind::Directcopy => {
                (d * d, 0)
            }
            PredictorKind::None => (0, 0),
        };
        Self {
            encoder,
            encoder_buffers,
            predictor,
            predictor_buffers,
        }
    }

    /// Everything `Module::num_params` counts on the online network (BN statistics included).
    pub fn online_total(&self) -> u64 {
        self.encoder + self.encoder_buffers + self.predictor + self.predictor_buffers
    }
}

/// `(parameters, running-statistic buffers)` of a trunk: bias-free convs, affine BN.
fn trunk_params(trunk: &TrunkConfig) -> (u64, u64) {
    let conv = |cin: usize, cout: usize, k: usize| (cin * cout * k * k) as u64;
    let bn = |c: usize| (2 * c as u64, 2 * c as u64);
    let mut params = conv(trunk.in_channels, trunk.stem_width, 3);
    let mut buffers = 0;
    let mut add_bn = |c: usize, params: &mut u64| {
        let (p, b) = bn(c);
        *params += p;
        buffers += b;
    };
    add_bn(trunk.stem_width, &mut params);
    let mut cin = trunk.stem_width;
    for stage in &trunk.stages {
        for b in 0..stage.blocks {
            let stride = if b == 0 { stage.stride } else { 1 };
            let w = stage.width;
            params += conv(cin, w, 3) + conv(w, w, 3);
            add_bn(w, &mut params);
            add_bn(w, &mut params);
            if stride != 1 || cin != w {
                params += conv(cin, w, 1);
                add_bn(w, &mut params);
            }
            cin = w;
        }
    }
    (params, buffers)
}

/// `(parameters, buffers)` of Linear → BN(affine off) → ReLU → Linear, with biases.
fn mlp_head_params(d_in: usize, hidden: usize, d_out: usize) -> (u64, u64) {
    let (i, h, o) = (d_in as u64, hidden as u64, d_out as u64);
    (i * h + h + h * o + o, 2 * h)
}

/// One feature-map shape the trunk produces, and how many copies the backward pass keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SavedMaps {
    /// Elements of one map per image (`channels * h * w`).
    per_image: u64,
    /// Copies kept for backward.
    copies: u64,
}

/// The saved maps of the trunk, layer by layer (see the module docs for the counting rule).
fn trunk_saved_maps(trunk: &TrunkConfig, image_size: usize) -> Vec<SavedMaps> {
    let (mut h, mut w) = (image_size, image_size);
    let mut out = vec![
        // The input image: the stem conv keeps it.
        SavedMaps {
            per_image: (trunk.in_channels * h * w) as u64,
            copies: 1,
        },
        // Stem: BN input, BN+ReLU output (kept by the next conv).
        SavedMaps {
            per_image: (trunk.stem_width * h * w) as u64,
            copies: 2,
        },
    ];
    let mut cin = trunk.stem_width;
    for stage in &trunk.stages {
        for b in 0..stage.blocks {
            let s = if b == 0 { stage.stride } else { 1 };
            (h, w) = (h.div_ceil(s), w.div_ceil(s));
            let downsample = s != 1 || cin != stage.width;
            // bn1 input (also what conv2 reads, normalised on the fly), bn2 input, the
            // block output; a downsample adds its BN's input.
            let copies = 3 + u64::from(downsample);
            out.push(SavedMaps {
                per_image: (stage.width * h * w) as u64,
                copies,
            });
            cin = stage.width;
        }
    }
    out
}

/// Bytes by category of one training step at its peak, for `batch` frames (`2 * batch` images).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryEstimate {
    /// Frames per batch.
    pub batch: usize,
    /// Online network: parameters and BN statistics (encoder + predictor).
    pub parameters: u64,
    /// Gradients of the trained parameters (a set-from-F predictor has none).
    pub gradients: u64,
    /// SGD momentum buffers: one per trained parameter (none when momentum is 0).
    pub optimizer: u64,
    /// Target network: parameters + BN statistics (absent for SimSiam, which reuses the
    /// detached online outputs).
    pub target: u64,
    /// Predictor: its saved activations and the copy the optimiser writes (its parameters
    /// are in `parameters`, gradients in `gradients`, momentum in `optimizer`).
    pub predictor: u64,
    /// F (d² f64), the per-batch correlation scratch, and (DirectPred) the eigensolver's
    /// matrices; the host copy of the projector outputs.
    pub correlation: u64,
    /// Feature maps kept for backward by the online forward of `2B` images, plus the heads.
    pub activations: u64,
    /// Working set on top of the saved maps (largest-map copies, see the constants), the host
    /// copies of the input views, and [`RUNTIME_OVERHEAD_BYTES`].
    pub transient: u64,
    /// The process before any model exists (measured or [`DEFAULT_BASELINE_BYTES`]).
    pub baseline: u64,
}

impl MemoryEstimate {
    /// Predicted peak resident bytes: the sum of every category.
    pub fn total(&self) -> u64 {
        self.parameters
            + self.gradients
            + self.optimizer
            + self.target
            + self.predictor
            + self.correlation
            + self.activations
            + self.transient
            + self.baseline
    }
}

/// The accounting of one step of `method` on `model` with `batch` frames, on top of
/// `baseline` bytes of process overhead.
pub fn estimate(
    model: &ModelConfig,
    method: &MethodConfig,
    optim: &OptimConfig,
    batch: usize,
    baseline: u64,
) -> MemoryEstimate {
    let counts = ParamCounts::new(model, method);
    let n = 2 * batch as u64; // both views go through the online network as one batch
    let d = model.dim as u64;
    let trains_predictor = matches!(method.predictor, PredictorKind::Mlp | PredictorKind::Linear);
    let trained = counts.encoder
        + if trains_predictor {
            counts.predictor
        } else {
            0
        };
    let has_target = method.stop_gradient && method.momentum > 0.0;

    let trunk = model.trunk_config();
    let maps = trunk_saved_maps(&trunk, model.image_size);
    let trunk_saved: u64 = maps.iter().map(|m| m.per_image * m.copies).sum();
    let largest_map = maps.iter().map(|m| m.per_image).max().unwrap_or(0);
    // Projector: its input (trunk features), BN centred, BN output, ReLU output, and z.
    let head_saved = trunk.out_dim() as u64 + 3 * model.projector_hidden as u64 + d;
    // Loss on 2B rows of d: normalised p and z and their norms are kept by the cosine.
    let loss_saved = 4 * d;
    let activations = n * (trunk_saved + head_saved + loss_saved) * F32;

    let predictor_acts = match method.predictor {
        PredictorKind::Mlp => 3 * method.predictor_hidden as u64 + d,
        PredictorKind::Linear | PredictorKind::Directpred | PredictorKind::Directcopy => d,
        PredictorKind::None => 0,
    };
    // The optimiser step builds the new weights while the old ones are alive.
    let predictor_update = if trains_predictor {
        counts.predictor
    } else {
        0
    };
    let predictor = (n * predictor_acts + predictor_update) * F32;

    // F and the batch scratch of `CorrelationEstimate::update`, the host copy of z, and for
    // DirectPred the eigensolver's input, eigenvectors and reconstruction (3 d² f64).
    let eigen = if method.predictor == PredictorKind::Directpred {
        3 * d * d
    } else {
        0
    };
    let correlation = (2 * d * d + eigen) * F64 + n * d * F32;

    let views = n * (model.in_channels * model.image_size * model.image_size) as u64;
    let maps = if has_target {
        TARGET_FORWARD_TRANSIENT_MAPS
    } else {
        BACKWARD_TRANSIENT_MAPS
    };
    // The two host views and their concatenation, the largest-map working set, the encoder's
    // new weights built by the optimiser while the old ones are alive, and the runtime constant.
    let transient = (2 * views + counts.encoder) * F32
        + (maps * (n * largest_map * F32) as f64) as u64
        + RUNTIME_OVERHEAD_BYTES;

    MemoryEstimate {
        batch,
        parameters: counts.online_total() * F32,
        gradients: trained * F32,
        optimizer: if optim.momentum > 0.0 {
            trained * F32
        } else {
            0
        },
        target: if has_target {
            (counts.encoder + counts.encoder_buffers) * F32
        } else {
            0
        },
        predictor,
        correlation,
        activations,
        transient,
        baseline,
    }
}
