//! The `[method]` and `[optim]` tables of the training config.

use serde::{Deserialize, Serialize};

/// How the predictor is produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PredictorKind {
    /// BYOL's 2-layer predictor (Linear → BN → ReLU → Linear), trained.
    Mlp,
    /// A d x d linear predictor without bias, trained (optionally kept symmetric).
    Linear,
    /// DirectPred: Wp set from the eigendecomposition of F, never trained.
    Directpred,
    /// DirectCopy: Wp = F/‖F‖_F + εI, never trained.
    Directcopy,
    /// No predictor (identity): the ablation that collapses.
    None,
}

impl PredictorKind {
    /// Default ρ (EMA factor of F) for this predictor.
    pub fn default_rho(self) -> f64 {
        match self {
            Self::Directcopy => 0.5,
            _ => 0.3,
        }
    }

    /// Default ε for this predictor.
    pub fn default_eps(self) -> f64 {
        match self {
            Self::Directcopy => 0.3,
            _ => 0.1,
        }
    }
}

/// How the target branch is produced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetConfig {
    /// EMA momentum m of the target weights (0 = the online weights, as SimSiam).
    pub momentum: f64,
    /// Block gradients through the target branch (turning it off is the collapsing ablation).
    pub stop_gradient: bool,
}

/// The `[method]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MethodConfig {
    /// Predictor rule.
    pub predictor: PredictorKind,
    /// Hidden width of the MLP predictor.
    pub predictor_hidden: usize,
    /// Linear predictor: symmetrise Wp after every step.
    pub symmetric: bool,
    /// Learning rate of a trained predictor relative to the encoder's (αp).
    pub alpha_p: f64,
    /// EMA factor ρ of F (default: 0.3 DirectPred, 0.5 DirectCopy).
    pub rho: Option<f64>,
    /// ε added to the predictor's eigenvalues (default: 0.1 DirectPred, 0.3 DirectCopy).
    pub eps: Option<f64>,
    /// Set Wp every `freq` steps.
    pub freq: u64,
    /// EMA momentum of the target network; 0 gives SimSiam.
    pub momentum: f64,
    /// Stop gradients through the target branch.
    pub stop_gradient: bool,
}

impl Default for MethodConfig {
    fn default() -> Self {
        Self {
            predictor: PredictorKind::Directpred,
            predictor_hidden: 512,
            symmetric: false,
            alpha_p: 1.0,
            rho: None,
            eps: None,
            freq: 1,
            momentum: 0.996,
            stop_gradient: true,
        }
    }
}

impl MethodConfig {
    /// ρ in effect.
    pub fn rho(&self) -> f64 {
        self.rho.unwrap_or(self.predictor.default_rho())
    }

    /// ε in effect.
    pub fn eps(&self) -> f64 {
        self.eps.unwrap_or(self.predictor.default_eps())
    }

    /// The target rule.
    pub fn target(&self) -> TargetConfig {
        TargetConfig {
            momentum: self.momentum,
            stop_gradient: self.stop_gradient,
        }
    }

    /// A short name of the method, as in the paper's tables.
    pub fn label(&self) -> String {
        let base = match self.predictor {
            PredictorKind::Mlp if self.momentum == 0.0 => "simsiam".to_string(),
            PredictorKind::Mlp => "byol".to_string(),
            PredictorKind::Linear if self.symmetric => "linear-symmetric".to_string(),
            PredictorKind::Linear => "linear".to_string(),
            PredictorKind::Directpred if self.freq > 1 => format!("directpred-freq{}", self.freq),
            PredictorKind::Directpred => "directpred".to_string(),
            PredictorKind::Directcopy => "directcopy".to_string(),
            PredictorKind::None => "no-predictor".to_string(),
        };
        let mut label = base;
        if !self.stop_gradient {
            label.push_str("-no-stopgrad");
        }
        if self.momentum == 0.0 && self.predictor != PredictorKind::Mlp {
            label.push_str("-no-ema");
        }
        label
    }

    /// Check the values, naming the offending key.
    pub fn validate(&self) -> Result<(), String> {
        let rho = self.rho();
        if !(0.0..1.0).contains(&rho) {
            return Err(format!("method.rho = {rho}: must be in [0, 1)"));
        }
        let eps = self.eps();
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(format!("method.eps = {eps}: must be a finite number >= 0"));
        }
        if self.freq == 0 {
            return Err("method.freq = 0: must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(format!(
                "method.momentum = {}: must be in [0, 1)",
                self.momentum
            ));
        }
        if !(self.alpha_p.is_finite() && self.alpha_p > 0.0) {
            return Err(format!("method.alpha_p = {}: must be > 0", self.alpha_p));
        }
        if self.predictor_hidden == 0 {
            return Err("method.predictor_hidden must be at least 1".into());
        }
        if self.symmetric && self.predictor != PredictorKind::Linear {
            return Err(format!(
                "method.symmetric applies to the linear predictor, not {:?}",
                self.predictor
            ));
        }
        Ok(())
    }
}

/// The `[optim]` table: SGD with momentum and (coupled) weight decay on all trained parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Learning rate (constant, as in the reference).
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// Weight decay.
    pub weight_decay: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            lr: 0.03,
            momentum: 0.9,
            weight_decay: 4e-4,
        }
    }
}

impl OptimConfig {
    /// Check the values, naming the offending key.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!("optim.lr = {}: must be > 0", self.lr));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(format!(
                "optim.momentum = {}: must be in [0, 1)",
                self.momentum
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(format!(
                "optim.weight_decay = {}: must be >= 0",
                self.weight_decay
            ));
        }
        Ok(())
    }
}
