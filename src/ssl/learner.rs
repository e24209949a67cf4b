//! One training step of non-contrastive SSL, for every method:
//! online forward of both views → F update → prediction → target → loss → backward →
//! optimiser step → predictor rule → EMA of the target.

use super::config::{MethodConfig, OptimConfig, PredictorKind};
use super::correlation::CorrelationEstimate;
use super::directcopy::DirectCopy;
use super::directpred::DirectPred;
use super::ema::{detached_copy, ema_update};
use super::error::SslError;
use super::linear::LinearPredictor;
use super::loss::symmetric_loss;
use super::mlp::MlpPredictor;
use super::none::NoPredictor;
use super::predictor::{PredictorNet, PredictorRule};
use super::set_from_correlation::SetFromCorrelation;
use super::state::{LearnerState, record_bytes, record_from_bytes};
use crate::data::ViewBatch;
use crate::model::{Encoder, ModelConfig};
use crate::step_profile;
use burn::module::Module;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, Optimizer, Sgd, SgdConfig};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};

/// The online network: encoder (trunk + projector) and predictor (`None` = identity).
#[derive(Module, Debug)]
pub struct OnlineNetwork<B: Backend> {
    /// Trunk and projector.
    pub encoder: Encoder<B>,
    /// The predictor head.
    pub predictor: Option<PredictorNet<B>>,
}

impl<B: Backend> OnlineNetwork<B> {
    /// Predictions for projector outputs `z`.
    pub fn predict(&self, z: Tensor<B, 2>) -> Tensor<B, 2> {
        match &self.predictor {
            Some(p) => p.forward(z),
            None => z,
        }
    }
}

/// The predictor rule for a method config.
pub fn predictor_rule<B: AutodiffBackend>(method: &MethodConfig) -> Box<dyn PredictorRule<B>> {
    match method.predictor {
        PredictorKind::Mlp => Box::new(MlpPredictor {
            hidden: method.predictor_hidden,
        }),
        PredictorKind::Linear => Box::new(LinearPredictor {
            symmetric: method.symmetric,
        }),
        PredictorKind::Directpred => Box::new(SetFromCorrelation(DirectPred {
            eps: method.eps(),
            freq: method.freq,
        })),
        PredictorKind::Directcopy => Box::new(SetFromCorrelation(DirectCopy {
            eps: method.eps(),
            freq: method.freq,
        })),
        PredictorKind::None => Box::new(NoPredictor),
    }
}

/// Touches every parameter so it is initialised now.
///
/// burn initialises parameters lazily, and a clone of a not-yet-initialised parameter
/// initialises independently, with other random values. Materialising right after
/// construction makes the weights a function of the seed alone and keeps snapshots
/// (checkpoints, the target copy) identical to the network that trains.
fn materialize<B: Backend, M: Module<B>>(module: &M) {
    struct Touch;
    impl<B: Backend> burn::module::ModuleVisitor<B> for Touch {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<B, D>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Touch);
}

type Sgd2<B> = OptimizerAdaptor<Sgd<<B as AutodiffBackend>::InnerBackend>, OnlineNetwork<B>, B>;

/// What one step reports.
#[derive(Debug, Clone, Copy)]
pub struct StepStats {
    /// Step index (0-based) that was just taken.
    pub step: u64,
    /// Symmetrised loss (0 = perfect agreement, 8 = opposite).
    pub loss: f64,
}

/// The training state of one run: online and target networks, F, optimisers, step count.
pub struct Learner<B: AutodiffBackend> {
    model: ModelConfig,
    method: MethodConfig,
    optim: OptimConfig,
    online: Option<OnlineNetwork<B>>,
    target: Option<Encoder<B>>,
    /// The running correlation of the predictor inputs, F (kept for every method: DirectPred
    /// reads it, and the alignment monitors need it for the others).
    pub correlation: CorrelationEstimate,
    rule: Box<dyn PredictorRule<B>>,
    encoder_optim: Sgd2<B>,
    predictor_optim: Sgd2<B>,
    step: u64,
    device: B::Device,
    /// Projector outputs of the last step (both views, `2B x dim`), for collapse monitors.
    last_outputs: Vec<f32>,
}

fn sgd<B: AutodiffBackend>(optim: &OptimConfig) -> Sgd2<B> {
    let momentum = (optim.momentum > 0.0)
        // PyTorch's SGD has no dampening; burn's default is 0.1.
        .then(|| {
            MomentumConfig::new()
                .with_momentum(optim.momentum)
                .with_dampening(0.0)
        });
    let decay =
        (optim.weight_decay > 0.0).then(|| WeightDecayConfig::new(optim.weight_decay as f32));
    SgdConfig::new()
        .with_momentum(momentum)
        .with_weight_decay(decay)
        .init()
}

impl<B: AutodiffBackend> Learner<B> {
    /// A fresh learner; `seed` makes the initial weights reproducible.
    pub fn new(
        model: &ModelConfig,
        method: &MethodConfig,
        optim: &OptimConfig,
        seed: u64,
        device: &B::Device,
    ) -> Result<Self, SslError> {
        model.validate().map_err(SslError::Config)?;
        method.validate().map_err(SslError::Config)?;
        optim.validate().map_err(SslError::Config)?;
        B::seed(device, seed);
        let rule = predictor_rule::<B>(method);
        let encoder = Encoder::new(model, device);
        let predictor = rule.init(model.dim, device);
        let online = OnlineNetwork { encoder, predictor };
        materialize(&online);
        let target = Self::needs_target(method).then(|| detached_copy(&online.encoder));
        Ok(Self {
            model: model.clone(),
            method: method.clone(),
            optim: optim.clone(),
            online: Some(online),
            target,
            correlation: CorrelationEstimate::new(model.dim, method.rho()),
            rule,
            encoder_optim: sgd(optim),
            predictor_optim: sgd(optim),
            step: 0,
            device: device.clone(),
            last_outputs: Vec::new(),
        })
    }

    /// A separate target network exists for an EMA target with stop-gradient. With momentum 0
    /// it would equal the online encoder, so the detached online outputs are used instead (the
    /// same values, without a second forward pass or a copy of the weights).
    fn needs_target(method: &MethodConfig) -> bool {
        method.stop_gradient && method.momentum > 0.0
    }

    /// The online network.
    pub fn online(&self) -> &OnlineNetwork<B> {
        self.online
            .as_ref()
            .expect("online network is present between steps")
    }

    /// The target encoder, when the method keeps one.
    pub fn target(&self) -> Option<&Encoder<B>> {
        self.target.as_ref()
    }

    /// Number of steps taken.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The device the networks live on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// The model config.
    pub fn model_config(&self) -> &ModelConfig {
        &self.model
    }

    /// The method config.
    pub fn method_config(&self) -> &MethodConfig {
        &self.method
    }

    /// The optimiser config.
    pub fn optim_config(&self) -> &OptimConfig {
        &self.optim
    }

    /// Whether the optimiser trains the predictor.
    pub fn trains_predictor(&self) -> bool {
        self.rule.trains()
    }

    /// Projector outputs of the last step, row-major `2B x dim` (empty before the first step).
    pub fn last_outputs(&self) -> &[f32] {
        &self.last_outputs
    }

    /// Ids of every parameter the optimisers hold state (momentum buffers) for.
    pub fn optimizer_state_ids(&self) -> Vec<burn::module::ParamId> {
        let mut ids: Vec<_> = self.encoder_optim.to_record().into_keys().collect();
        ids.extend(self.predictor_optim.to_record().into_keys());
        ids
    }

    /// Wp (math orientation, row-major) when the predictor is linear.
    pub fn predictor_matrix(&self) -> Option<Vec<f64>> {
        self.online()
            .predictor
            .as_ref()
            .and_then(|p| p.linear_matrix())
    }

    /// Both views of a batch as one `[2B, C, H, W]` tensor (view 1 first), so BatchNorm
    /// statistics cover both views, as in the reference.
    pub fn batch_tensor(&self, batch: &ViewBatch) -> Result<Tensor<B, 4>, SslError> {
        let (c, s) = (self.model.in_channels, self.model.image_size);
        if batch.channels != c || batch.height != s || batch.width != s || batch.batch < 2 {
            return Err(SslError::BatchShape {
                got: format!(
                    "{}x{}x{}x{}",
                    batch.batch, batch.channels, batch.height, batch.width
                ),
                expected: format!("Nx{c}x{s}x{s} with N >= 2"),
            });
        }
        let per_view = batch.batch * c * s * s;
        if batch.views.iter().any(|v| v.len() != per_view) {
            return Err(SslError::BatchShape {
                got: format!(
                    "views of {} and {} values",
                    batch.views[0].len(),
                    batch.views[1].len()
                ),
                expected: format!("{per_view} values per view"),
            });
        }
        let mut values = Vec::with_capacity(2 * per_view);
        values.extend_from_slice(&batch.views[0]);
        values.extend_from_slice(&batch.views[1]);
        let data = TensorData::new(values, [2 * batch.batch, c, s, s]);
        Ok(Tensor::from_data(data, &self.device))
    }

    /// One training step on a batch of view pairs.
    ///
    /// Under a [`crate::step_profile`] recording, each stage below is timed as a phase (the
    /// target's only where the method keeps a target network).
    pub fn step(&mut self, batch: &ViewBatch) -> Result<StepStats, SslError> {
        let step = self.step;
        let dev = self.device.clone();
        let phase = |name: &str| step_profile::phase::<B>(&dev, name);
        phase("upload views");
        let x = self.batch_tensor(batch)?;
        let online = self
            .online
            .take()
            .expect("online network is present between steps");

        // The EMA target first: its forward keeps no graph, so its feature maps are freed
        // before the online forward builds one (a lower peak; the values are the same).
        if self.target.is_some() {
            phase("target forward");
        }
        let ema_target = match (&self.target, self.method.stop_gradient) {
            (Some(target), true) => Some(target.forward(x.clone()).detach()),
            _ => None,
        };

        // 1. Online forward of both views; 2. F from the detached projector outputs.
        phase("online forward");
        let z = online.encoder.forward(x);
        phase("F update");
        let z_host = z.clone().detach().into_data().convert::<f32>();
        let z_host = z_host.as_slice::<f32>().expect("f32 data after convert");
        self.correlation.update(z_host, 2 * batch.batch);
        self.last_outputs.clear();
        self.last_outputs.extend_from_slice(z_host);

        // 3. Prediction with the current Wp, the target, the loss and its gradients.
        phase("predictor + loss");
        let p = online.predict(z.clone());
        let target = match ema_target {
            Some(t) => t,
            // The ablation: the target branch is the online network, gradients included.
            None if !self.method.stop_gradient => z,
            // SimSiam: the online outputs, detached.
            None => z.detach(),
        };
        let loss = symmetric_loss(p, target);
        let loss_value = loss.clone().into_scalar().to_f64_checked();
        if !loss_value.is_finite() {
            self.online = Some(online);
            return Err(SslError::NonFinite {
                step,
                what: "the loss",
            });
        }
        phase("backward");
        let mut grads = loss.backward();
        let encoder_grads = GradientsParams::from_module(&mut grads, &online.encoder);
        let predictor_grads = match (&online.predictor, self.rule.trains()) {
            (Some(predictor), true) => Some(GradientsParams::from_module(&mut grads, predictor)),
            _ => None,
        };
        phase("optimizer (SGD)");
        let lr = self.optim.lr;
        let mut online = self.encoder_optim.step(lr, online, encoder_grads);
        if let Some(grads) = predictor_grads {
            online = self
                .predictor_optim
                .step(lr * self.method.alpha_p, online, grads);
        }

        // 4. The rule may set Wp from F (DirectPred, DirectCopy) or symmetrise it.
        phase("predictor rule");
        let predictor = online.predictor.take();
        online.predictor = match self.rule.after_step(step, &self.correlation, predictor) {
            Ok(p) => p,
            Err(e) => {
                self.online = Some(online);
                return Err(e);
            }
        };

        // 5. EMA of the target.
        if let Some(target) = self.target.take() {
            phase("EMA target");
            self.target = Some(ema_update(target, &online.encoder, self.method.momentum));
        }
        self.online = Some(online);
        self.step += 1;
        step_profile::close_phase::<B>(&dev);
        step_profile::count_step();
        Ok(StepStats {
            step,
            loss: loss_value,
        })
    }
}

impl<B: AutodiffBackend> Learner<B> {
    /// The complete training state (see [`LearnerState`]).
    pub fn state(&self) -> LearnerState {
        use burn::optim::Optimizer;
        LearnerState {
            step: self.step,
            online: record_bytes::<B, _>(self.online().clone().into_record()),
            target: self
                .target
                .as_ref()
                .map(|t| record_bytes::<B, _>(t.clone().into_record())),
            encoder_optim: record_bytes::<B, _>(self.encoder_optim.to_record()),
            predictor_optim: record_bytes::<B, _>(self.predictor_optim.to_record()),
            correlation: self.correlation.clone(),
        }
    }

    /// A learner that continues exactly where `state` left off. The configs must be the ones
    /// the state was trained with (the networks are rebuilt from them, then loaded).
    pub fn from_state(
        model: &ModelConfig,
        method: &MethodConfig,
        optim: &OptimConfig,
        state: &LearnerState,
        device: &B::Device,
    ) -> Result<Self, SslError> {
        let mut learner = Self::new(model, method, optim, 0, device)?;
        let bad =
            |e: String| SslError::Config(format!("checkpoint does not match the config: {e}"));
        if state.correlation.dim != model.dim {
            return Err(bad(format!(
                "F is {0}x{0} but model.dim = {1}",
                state.correlation.dim, model.dim
            )));
        }
        let online = learner
            .online
            .take()
            .expect("fresh learner has its network");
        let record =
            record_from_bytes::<B, _>(&state.online, "online network", device).map_err(bad)?;
        let mut online = online.load_record(record);
        if !learner.rule.trains() {
            // A predictor set from F stays out of autodiff after loading.
            online.predictor = online.predictor.map(|p| p.no_grad());
        }
        learner.online = Some(online);
        learner.target = match (&state.target, learner.target.take()) {
            (Some(bytes), Some(target)) => {
                let record =
                    record_from_bytes::<B, _>(bytes, "target network", device).map_err(bad)?;
                Some(target.load_record(record).no_grad())
            }
            (None, None) => None,
            _ => {
                return Err(bad(
                    "the method's target network does not match the checkpoint's".into(),
                ));
            }
        };
        let enc = record_from_bytes::<B, _>(&state.encoder_optim, "encoder optimiser", device)
            .map_err(bad)?;
        learner.encoder_optim = learner.encoder_optim.load_record(enc);
        let pred = record_from_bytes::<B, _>(&state.predictor_optim, "predictor optimiser", device)
            .map_err(bad)?;
        learner.predictor_optim = learner.predictor_optim.load_record(pred);
        learner.correlation = state.correlation.clone();
        learner.step = state.step;
        Ok(learner)
    }
}

/// Loss scalars come back in the backend's float type.
trait ToF64 {
    fn to_f64_checked(self) -> f64;
}

impl<E: burn::tensor::ElementConversion> ToF64 for E {
    fn to_f64_checked(self) -> f64 {
        self.elem::<f64>()
    }
}
