//! Named experiments that reproduce the paper's linear-model claims, with CLI overrides.
//! `docs/theory.md` says which claim/figure each one reproduces.

use super::modes::ModeParams;
use super::simulator::{DirectPredForm, Integrator, PredictorMode, SimConfig, TargetMode};
use anyhow::{Result, bail};

/// A per-mode experiment: every (η, start) combination integrated independently.
#[derive(Debug, Clone)]
pub struct ModeSweep {
    /// α_p, τ, σ (and η, replaced by each of `etas`).
    pub base: ModeParams,
    /// Weight decays to run.
    pub etas: Vec<f64>,
    /// Initial `(p, s)` pairs.
    pub starts: Vec<(f64, f64)>,
    /// RK4 step.
    pub dt: f64,
    /// Number of steps.
    pub steps: usize,
    /// Trajectory sampling.
    pub record_every: usize,
}

impl ModeSweep {
    /// Rejects values the per-mode dynamics do not define, naming the flag.
    pub fn validate(&self) -> Result<()> {
        let b = &self.base;
        for (flag, v) in [
            ("--alpha-p", b.alpha_p),
            ("--tau", b.tau),
            ("--sigma", b.sigma),
        ] {
            if !v.is_finite() || v < 0.0 {
                bail!("{flag} must be a finite non-negative number (got {v})");
            }
        }
        if let Some(eta) = self.etas.iter().find(|e| !e.is_finite() || **e < 0.0) {
            bail!("--eta must be a finite non-negative number (got {eta})");
        }
        if !self.dt.is_finite() || self.dt <= 0.0 {
            bail!("--dt must be positive (got {})", self.dt);
        }
        if self.steps == 0 {
            bail!("--steps must be at least 1");
        }
        Ok(())
    }
}

/// What a preset runs.
#[derive(Debug, Clone)]
pub enum Experiment {
    /// The full matrix flow of Lemma 1.
    Matrix(SimConfig),
    /// The decoupled per-mode dynamics.
    Modes(ModeSweep),
}

/// A named, documented experiment.
#[derive(Debug, Clone)]
pub struct Preset {
    /// CLI name.
    pub name: &'static str,
    /// What it shows, one line.
    pub summary: &'static str,
    /// The experiment.
    pub experiment: Experiment,
}

/// Names accepted by [`preset`].
pub const PRESETS: &[&str] = &[
    "collapse-no-predictor",
    "collapse-no-stopgrad",
    "alignment",
    "simsiam",
    "directpred",
    "fixed-point",
    "weight-decay-sweep",
];

/// Values given on the command line that replace a preset's defaults.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--n1`.
    pub n1: Option<usize>,
    /// `--n2`.
    pub n2: Option<usize>,
    /// `--alpha-p`.
    pub alpha_p: Option<f64>,
    /// `--beta`.
    pub beta: Option<f64>,
    /// `--eta`.
    pub eta: Option<f64>,
    /// `--sigma`.
    pub sigma: Option<f64>,
    /// `--tau` (per-mode presets only).
    pub tau: Option<f64>,
    /// `--steps`.
    pub steps: Option<usize>,
    /// `--dt`.
    pub dt: Option<f64>,
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--asymmetric-wp`: train Wp without symmetrising its gradient.
    pub asymmetric_wp: bool,
    /// `--integrator`.
    pub integrator: Option<Integrator>,
}

/// The paper's BYOL-like linear setting (β 0.4, η 0.04, σ 0.03, Wa(0) = 0).
fn byol_linear() -> SimConfig {
    SimConfig {
        n1: 10,
        n2: 10,
        steps: 30_000,
        dt: 0.01,
        wa_zero_init: true,
        per_mode: true,
        ..SimConfig::default()
    }
}

/// Looks up a preset by name; the error lists the valid names.
pub fn preset(name: &str) -> Result<Preset> {
    let p = match name {
        "collapse-no-predictor" => Preset {
            name: "collapse-no-predictor",
            summary: "Wp = I fixed: W obeys a linear decay (Thm 2) and shrinks to 0",
            experiment: Experiment::Matrix(SimConfig {
                predictor: PredictorMode::Identity,
                symmetric_wp: false,
                sigma: 0.3,
                wa_zero_init: false,
                ..byol_linear()
            }),
        },
        "collapse-no-stopgrad" => Preset {
            name: "collapse-no-stopgrad",
            summary: "SimSiam without stop-gradient: gradient through the target, W shrinks to 0",
            experiment: Experiment::Matrix(SimConfig {
                target: TargetMode::Online,
                stop_gradient: false,
                sigma: 0.3,
                wa_zero_init: false,
                ..byol_linear()
            }),
        },
        "alignment" => Preset {
            name: "alignment",
            summary: "BYOL linear model (symmetric trained Wp, EMA, stop-grad): no collapse, \
                      [F, Wp] -> 0 (Thm 3)",
            experiment: Experiment::Matrix(byol_linear()),
        },
        "simsiam" => Preset {
            name: "simsiam",
            summary: "SimSiam linear model (Wa = W, stop-grad, symmetric trained Wp): aligns too",
            experiment: Experiment::Matrix(SimConfig {
                target: TargetMode::Online,
                wa_zero_init: false,
                ..byol_linear()
            }),
        },
        "directpred" => Preset {
            name: "directpred",
            summary: "DirectPred (Wp = F^1/2, the linear model's own fixed-point relation): \
                      [F, Wp] = 0 throughout, modes settle at p*+",
            experiment: Experiment::Matrix(SimConfig {
                // The reference code's normalised form p = sqrt(s/max s) + 0.1 is built for the
                // scale-free cosine loss; in this L2 model its top p = 1.1 > τ/(1+σ²) and every
                // mode decays (see docs/theory.md). F^1/2 is s = p²/αp at αp = 1.
                predictor: PredictorMode::DirectPred(DirectPredForm::Sqrt),
                ..byol_linear()
            }),
        },
        "fixed-point" => Preset {
            name: "fixed-point",
            summary: "per-mode dynamics at eta = 0.1 (p*- = 0.113, p*+ = 0.886): weak modes \
                      starting below p*- collapse, the rest settle at p*+",
            experiment: Experiment::Modes(ModeSweep {
                base: ModeParams {
                    alpha_p: 1.0,
                    tau: 1.0,
                    eta: 0.1,
                    sigma: 0.03,
                },
                etas: vec![0.1],
                starts: vec![
                    (0.02, 0.01),
                    (0.08, 0.01),
                    (0.2, 0.01),
                    (0.02, 0.5),
                    (0.5, 0.5),
                    (1.5, 0.5),
                    (-0.3, 0.5),
                ],
                dt: 0.01,
                steps: 30_000,
                record_every: 50,
            }),
        },
        "weight-decay-sweep" => Preset {
            name: "weight-decay-sweep",
            summary: "per-mode dynamics over eta in {0, 0.01, 0.1, 0.2, 0.25, 0.3, 1}: the \
                      collapse basin grows with eta, everything collapses above tau^2/(4(1+s^2))",
            experiment: Experiment::Modes(ModeSweep {
                base: ModeParams {
                    alpha_p: 1.0,
                    tau: 1.0,
                    eta: 0.0,
                    sigma: 0.03,
                },
                etas: vec![0.0, 0.01, 0.1, 0.2, 0.25, 0.3, 1.0],
                starts: [0.02, 0.1, 0.2, 0.3, 0.5, 0.8]
                    .iter()
                    .flat_map(|&p| [1e-3, 1e-2, 1e-1, 1.0].map(|s| (p, s)))
                    .collect(),
                dt: 0.01,
                steps: 100_000,
                record_every: 500,
            }),
        },
        _ => bail!("unknown preset `{name}`; available: {}", PRESETS.join(", ")),
    };
    Ok(p)
}

impl Preset {
    /// Checks the (possibly overridden) settings before anything runs.
    pub fn validate(&self) -> Result<()> {
        match &self.experiment {
            Experiment::Matrix(c) => c.validate(),
            Experiment::Modes(m) => m.validate(),
        }
    }

    /// Applies command-line overrides; returns the names of overrides this preset ignores.
    pub fn apply(&mut self, o: &Overrides) -> Vec<&'static str> {
        let mut ignored = Vec::new();
        match &mut self.experiment {
            Experiment::Matrix(c) => {
                set(&mut c.n1, o.n1);
                set(&mut c.n2, o.n2);
                set(&mut c.alpha_p, o.alpha_p);
                set(&mut c.beta, o.beta);
                set(&mut c.eta, o.eta);
                set(&mut c.sigma, o.sigma);
                set(&mut c.steps, o.steps);
                set(&mut c.dt, o.dt);
                set(&mut c.seed, o.seed);
                set(&mut c.integrator, o.integrator);
                if o.asymmetric_wp {
                    c.symmetric_wp = false;
                }
                if o.tau.is_some() {
                    ignored.push("--tau");
                }
            }
            Experiment::Modes(m) => {
                set(&mut m.base.alpha_p, o.alpha_p);
                set(&mut m.base.sigma, o.sigma);
                set(&mut m.base.tau, o.tau);
                set(&mut m.steps, o.steps);
                set(&mut m.dt, o.dt);
                if let Some(eta) = o.eta {
                    m.etas = vec![eta];
                }
                for (flag, given) in [
                    ("--n1", o.n1.is_some()),
                    ("--n2", o.n2.is_some()),
                    ("--beta", o.beta.is_some()),
                    ("--seed", o.seed.is_some()),
                    ("--asymmetric-wp", o.asymmetric_wp),
                    (
                        "--integrator (per-mode presets always use RK4)",
                        o.integrator.is_some(),
                    ),
                ] {
                    if given {
                        ignored.push(flag);
                    }
                }
            }
        }
        ignored
    }
}

fn set<T>(dst: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *dst = v;
    }
}
