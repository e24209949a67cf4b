//! Gradient flow of the linear BYOL/SimSiam model (REFERENCE.md, Lemma 1):
//!
//! ```text
//! G   = −Wp W (X + X') + Wa X                (n2×n1; the residual's correlation with x)
//! Ẇp  = αp G Wᵀ − η Wp
//! Ẇ   = Wpᵀ G − η W
//! Ẇa  = β (W − Wa)                           (EMA target; SimSiam: Wa = W)
//! ```
//!
//! ## Without stop-gradient
//! The target branch then also receives a gradient. With `Wa = W` (SimSiam, the only case where
//! it is a trained weight), `J = ½ E‖Wp W x₁ − W x₂‖²` with `x_i = x̄ + e_i`,
//! `E[x̄x̄ᵀ] = X`, `E[e eᵀ] = X'`, views independent given `x̄`, gives
//!
//! ```text
//! −∂J/∂W = Wpᵀ(−Wp W (X+X') + W X)   (the stop-gradient term)
//!          + (Wp W X − W (X+X'))      (extra: gradient through the target branch)
//! ```
//!
//! For `Wp = I` this is `−2 W X'`; in general `J` is a strictly convex quadratic in `W` whenever
//! `X' ≻ 0`, so its only critical point in `W` is `W = 0`: the flow collapses (paper, Thm 2).
//! An EMA target is not a trained weight, so "no stop-gradient" is only defined for
//! [`TargetMode::Online`]; other combinations are rejected by [`SimConfig::validate`].
//!
//! ## DirectPred
//! The predictor is not integrated but set before every step from `F = W X Wᵀ`
//! (`F = Q diag(D) Qᵀ`): [`DirectPredForm::Normalized`] uses the reference code's
//! `p = max(√(max(D,0)/max D) + ε, 1e-4)`, [`DirectPredForm::Sqrt`] the plain `Wp = F^{1/2}`
//! (`p = √max(D,0)`), the paper's motivating form. Either way `Wp` is a polynomial-like function
//! of `F`, so `[F, Wp] = 0` from the first step.

use crate::monitor::linalg::{commutator, frobenius, identity, matmul, sym_eig, transpose};
use crate::theory::trace::TraceRow;
use anyhow::{Result, bail};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

/// How the predictor `Wp` evolves.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum PredictorMode {
    /// Trained by gradient flow (BYOL / SimSiam with a linear predictor).
    Trained,
    /// No predictor: `Wp = I`, fixed.
    Identity,
    /// Set from the eigendecomposition of `F` every step.
    DirectPred(DirectPredForm),
}

/// DirectPred's map from the eigenvalues of F to those of Wp.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum DirectPredForm {
    /// Reference code: `p = max(√(max(D,0)/max D) + eps, 1e-4)`.
    Normalized {
        /// Added to every eigenvalue (0.1 in the paper's runs) to keep weak modes learning.
        eps: f64,
    },
    /// `Wp = F^{1/2}`: `p = √max(D, 0)`.
    Sqrt,
}

/// How the target weights `Wa` follow the online weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum TargetMode {
    /// Exponential moving average, `Ẇa = β (W − Wa)`.
    Ema,
    /// SimSiam: the target is the online network, `Wa = W`.
    Online,
}

/// Time integration scheme.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Integrator {
    /// Forward Euler: one derivative per step; the discrete SGD the paper also simulates.
    Euler,
    /// Classic 4th-order Runge–Kutta: 4 derivatives per step, accurate at larger `dt`.
    Rk4,
}

/// Everything that defines one simulation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimConfig {
    /// Input dimension (columns of W).
    pub n1: usize,
    /// Output dimension (rows of W; Wp is n2×n2).
    pub n2: usize,
    /// Relative learning rate of the predictor.
    pub alpha_p: f64,
    /// EMA rate of the target (`Ẇa = β (W − Wa)`).
    pub beta: f64,
    /// Weight decay.
    pub eta: f64,
    /// Augmentation noise: `X' = σ² I`.
    pub sigma: f64,
    /// Integration step.
    pub dt: f64,
    /// Number of steps.
    pub steps: usize,
    /// Seed of the random initialisation.
    pub seed: u64,
    /// Predictor variant.
    pub predictor: PredictorMode,
    /// Target variant.
    pub target: TargetMode,
    /// Stop-gradient on the target branch (BYOL/SimSiam have it).
    pub stop_gradient: bool,
    /// Keep `Wp` symmetric by symmetrising its gradient (the setting of the paper's Thm 3).
    pub symmetric_wp: bool,
    /// Std of the i.i.d. Gaussian entries of W(0), divided by `√n1`.
    pub init_w: f64,
    /// Std of the entries of Wp(0) (symmetrised when `symmetric_wp`), divided by `√n2`.
    pub init_wp: f64,
    /// Start the EMA target at `Wa(0) = 0` (the paper's figures) instead of `Wa(0) = W(0)`.
    pub wa_zero_init: bool,
    /// Integration scheme.
    pub integrator: Integrator,
    /// Write one trace row every this many steps (and always the last step).
    pub record_every: usize,
    /// Record per-mode `p_j = u_jᵀ Wp u_j` and `s_j` (eigenvalues of F) in the trace.
    pub per_mode: bool,
    /// Data correlation `X` (n1×n1, row-major); `None` means the identity.
    #[serde(default)]
    pub x: Option<Vec<f64>>,
}

impl Default for SimConfig {
    /// BYOL-style linear model: trained symmetric predictor, EMA target, stop-gradient, with the
    /// paper's η = 0.04, β = 0.4, σ = 0.03 and a small random start.
    fn default() -> Self {
        Self {
            n1: 8,
            n2: 8,
            alpha_p: 1.0,
            beta: 0.4,
            eta: 0.04,
            sigma: 0.03,
            dt: 0.01,
            steps: 20_000,
            seed: 0,
            predictor: PredictorMode::Trained,
            target: TargetMode::Ema,
            stop_gradient: true,
            symmetric_wp: true,
            init_w: 1.0,
            init_wp: 1.0,
            wa_zero_init: false,
            integrator: Integrator::Euler,
            record_every: 100,
            per_mode: false,
            x: None,
        }
    }
}

impl SimConfig {
    /// Rejects sizes, rates and combinations the model does not define, naming the option.
    pub fn validate(&self) -> Result<()> {
        if self.n1 == 0 || self.n2 == 0 {
            bail!(
                "--n1 and --n2 must be positive (got {} and {})",
                self.n1,
                self.n2
            );
        }
        if self.n1 > 1024 || self.n2 > 1024 {
            bail!("--n1/--n2 above 1024 are not supported by this dense simulator");
        }
        for (name, v) in [
            ("--alpha-p", self.alpha_p),
            ("--beta", self.beta),
            ("--eta", self.eta),
            ("--sigma", self.sigma),
            ("init_w", self.init_w),
            ("init_wp", self.init_wp),
        ] {
            if !v.is_finite() || v < 0.0 {
                bail!("{name} must be a finite non-negative number (got {v})");
            }
        }
        if !self.dt.is_finite() || self.dt <= 0.0 {
            bail!("--dt must be positive (got {})", self.dt);
        }
        if self.steps == 0 {
            bail!("--steps must be at least 1");
        }
        if !self.stop_gradient && self.target != TargetMode::Online {
            bail!(
                "no stop-gradient is defined only for a SimSiam target (Wa = W): an EMA target \
                 has no gradient to receive"
            );
        }
        if let PredictorMode::DirectPred(DirectPredForm::Normalized { eps }) = self.predictor
            && (!eps.is_finite() || eps < 0.0)
        {
            bail!("DirectPred eps must be finite and non-negative (got {eps})");
        }
        if let Some(x) = &self.x {
            if x.len() != self.n1 * self.n1 {
                bail!("X must be {0}x{0} (got {1} values)", self.n1, x.len());
            }
            if x.iter().any(|v| !v.is_finite()) {
                bail!("X contains non-finite values");
            }
        }
        Ok(())
    }
}

/// The weights at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct SimState {
    /// Online weights, n2×n1 row-major.
    pub w: Vec<f64>,
    /// Target weights, n2×n1 row-major.
    pub wa: Vec<f64>,
    /// Predictor, n2×n2 row-major.
    pub wp: Vec<f64>,
}

/// A configured simulation: holds the current state and produces a trace.
#[derive(Debug, Clone)]
pub struct LinearSim {
    cfg: SimConfig,
    x: Vec<f64>,
    /// `X + X'`, cached.
    x_total: Vec<f64>,
    state: SimState,
    t: f64,
}

/// Time derivatives of the three weight matrices.
struct Deriv {
    w: Vec<f64>,
    wa: Vec<f64>,
    wp: Vec<f64>,
}

impl LinearSim {
    /// Validates `cfg` and draws the initial state from its seed.
    pub fn new(cfg: SimConfig) -> Result<Self> {
        cfg.validate()?;
        let (n1, n2) = (cfg.n1, cfg.n2);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
        let w_std = cfg.init_w / (n1 as f64).sqrt();
        let w: Vec<f64> = (0..n2 * n1).map(|_| w_std * gaussian(&mut rng)).collect();
        let wp_std = cfg.init_wp / (n2 as f64).sqrt();
        let mut wp: Vec<f64> = (0..n2 * n2).map(|_| wp_std * gaussian(&mut rng)).collect();
        if cfg.symmetric_wp {
            wp = symmetrise(&wp, n2);
        }
        let wa = if cfg.wa_zero_init && cfg.target == TargetMode::Ema {
            vec![0.0; n2 * n1]
        } else {
            w.clone()
        };
        let state = SimState { w, wa, wp };
        Self::with_state(cfg, state)
    }

    /// Starts from a given state (shapes are checked against `cfg`).
    pub fn with_state(cfg: SimConfig, mut state: SimState) -> Result<Self> {
        cfg.validate()?;
        let (n1, n2) = (cfg.n1, cfg.n2);
        if state.w.len() != n2 * n1 || state.wa.len() != n2 * n1 || state.wp.len() != n2 * n2 {
            bail!("initial state does not match n1 = {n1}, n2 = {n2}");
        }
        let x = cfg.x.clone().unwrap_or_else(|| identity(n1));
        let mut x_total = x.clone();
        let s2 = cfg.sigma * cfg.sigma;
        for i in 0..n1 {
            x_total[i * n1 + i] += s2;
        }
        if cfg.target == TargetMode::Online {
            state.wa = state.w.clone();
        }
        let mut sim = Self {
            cfg,
            x,
            x_total,
            state,
            t: 0.0,
        };
        sim.apply_constraints()?;
        Ok(sim)
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// The current weights.
    pub fn state(&self) -> &SimState {
        &self.state
    }

    /// Current time `steps_taken · dt`.
    pub fn time(&self) -> f64 {
        self.t
    }

    /// `F = W X Wᵀ` (n2×n2), the correlation of the online outputs.
    pub fn f_matrix(&self) -> Vec<f64> {
        let (n1, n2) = (self.cfg.n1, self.cfg.n2);
        let wx = matmul(&self.state.w, &self.x, n2, n1, n1);
        matmul(&wx, &transpose(&self.state.w, n2, n1), n2, n1, n2)
    }

    /// Enforces the variant's constraints on the state: fixed identity predictor, DirectPred's
    /// predictor from F, and `Wa = W` for SimSiam.
    fn apply_constraints(&mut self) -> Result<()> {
        let n2 = self.cfg.n2;
        if self.cfg.target == TargetMode::Online {
            self.state.wa.clone_from(&self.state.w);
        }
        match self.cfg.predictor {
            PredictorMode::Trained => {}
            PredictorMode::Identity => self.state.wp = identity(n2),
            PredictorMode::DirectPred(form) => {
                let eig = sym_eig(&self.f_matrix(), n2)?;
                let max = eig.values.first().copied().unwrap_or(0.0);
                let p: Vec<f64> = eig
                    .values
                    .iter()
                    .map(|&v| match form {
                        DirectPredForm::Normalized { eps } => {
                            let s = if max > 0.0 { v.max(0.0) / max } else { 0.0 };
                            (s.sqrt() + eps).max(1e-4)
                        }
                        DirectPredForm::Sqrt => v.max(0.0).sqrt(),
                    })
                    .collect();
                self.state.wp = eig.reconstruct(&p);
            }
        }
        Ok(())
    }

    /// Right-hand side of the flow at `s`.
    fn deriv(&self, s: &SimState) -> Deriv {
        let c = &self.cfg;
        let (n1, n2) = (c.n1, c.n2);
        // Wa is W itself for SimSiam, whatever the stored copy says mid-RK4.
        let wa = if c.target == TargetMode::Online {
            &s.w
        } else {
            &s.wa
        };
        let wpw = matmul(&s.wp, &s.w, n2, n2, n1);
        let wpw_xt = matmul(&wpw, &self.x_total, n2, n1, n1);
        let wa_x = matmul(wa, &self.x, n2, n1, n1);
        // G = −Wp W (X+X') + Wa X
        let g: Vec<f64> = wa_x.iter().zip(&wpw_xt).map(|(a, b)| a - b).collect();
        let wpt = transpose(&s.wp, n2, n2);
        let mut dw = matmul(&wpt, &g, n2, n2, n1);
        for (d, w) in dw.iter_mut().zip(&s.w) {
            *d -= c.eta * w;
        }
        if !c.stop_gradient {
            // Extra term from the gradient through the target branch (Wa = W): Wp W X − W (X+X').
            let wpw_x = matmul(&wpw, &self.x, n2, n1, n1);
            let w_xt = matmul(&s.w, &self.x_total, n2, n1, n1);
            for ((d, a), b) in dw.iter_mut().zip(&wpw_x).zip(&w_xt) {
                *d += a - b;
            }
        }
        let dwp = match c.predictor {
            PredictorMode::Trained => {
                let gwt = matmul(&g, &transpose(&s.w, n2, n1), n2, n1, n2);
                let mut d: Vec<f64> = gwt
                    .iter()
                    .zip(&s.wp)
                    .map(|(gv, p)| c.alpha_p * gv - c.eta * p)
                    .collect();
                if c.symmetric_wp {
                    d = symmetrise(&d, n2);
                }
                d
            }
            // Fixed or set from F: not integrated.
            PredictorMode::Identity | PredictorMode::DirectPred(_) => vec![0.0; n2 * n2],
        };
        let dwa = match c.target {
            TargetMode::Ema => {
                s.w.iter()
                    .zip(&s.wa)
                    .map(|(w, a)| c.beta * (w - a))
                    .collect()
            }
            TargetMode::Online => vec![0.0; n2 * n1],
        };
        Deriv {
            w: dw,
            wa: dwa,
            wp: dwp,
        }
    }

    /// Advances one step of `dt`.
    pub fn step(&mut self) -> Result<()> {
        let dt = self.cfg.dt;
        let next = match self.cfg.integrator {
            Integrator::Euler => {
                let k = self.deriv(&self.state);
                axpy_state(&self.state, &k, dt)
            }
            Integrator::Rk4 => {
                let k1 = self.deriv(&self.state);
                let k2 = self.deriv(&axpy_state(&self.state, &k1, dt / 2.0));
                let k3 = self.deriv(&axpy_state(&self.state, &k2, dt / 2.0));
                let k4 = self.deriv(&axpy_state(&self.state, &k3, dt));
                let combine = |a: &[f64], b: &[f64], c: &[f64], d: &[f64]| -> Vec<f64> {
                    (0..a.len())
                        .map(|i| (a[i] + 2.0 * b[i] + 2.0 * c[i] + d[i]) / 6.0)
                        .collect()
                };
                let k = Deriv {
                    w: combine(&k1.w, &k2.w, &k3.w, &k4.w),
                    wa: combine(&k1.wa, &k2.wa, &k3.wa, &k4.wa),
                    wp: combine(&k1.wp, &k2.wp, &k3.wp, &k4.wp),
                };
                axpy_state(&self.state, &k, dt)
            }
        };
        if next
            .w
            .iter()
            .chain(&next.wp)
            .chain(&next.wa)
            .any(|v| !v.is_finite())
        {
            bail!(
                "simulation diverged at t = {:.4} (non-finite weights): lower --dt",
                self.t + dt
            );
        }
        self.state = next;
        self.t += dt;
        self.apply_constraints()
    }

    /// Measurements of the current state.
    pub fn observe(&self, step: usize) -> Result<TraceRow> {
        let n2 = self.cfg.n2;
        let f = self.f_matrix();
        let comm = frobenius(&commutator(&f, &self.state.wp, n2));
        let denom = frobenius(&f) * frobenius(&self.state.wp);
        let (modes_p, modes_s) = if self.cfg.per_mode {
            let eig = sym_eig(&f, n2)?;
            let wq = matmul(&self.state.wp, &eig.vectors, n2, n2, n2);
            let p = (0..n2)
                .map(|j| {
                    (0..n2)
                        .map(|i| eig.vectors[i * n2 + j] * wq[i * n2 + j])
                        .sum()
                })
                .collect();
            (Some(p), Some(eig.values))
        } else {
            (None, None)
        };
        Ok(TraceRow {
            step,
            t: self.t,
            norm_w: frobenius(&self.state.w),
            norm_wa: frobenius(&self.state.wa),
            norm_wp: frobenius(&self.state.wp),
            commutator: comm,
            relative_commutator: if denom > 0.0 { comm / denom } else { 0.0 },
            mode_p: modes_p,
            mode_s: modes_s,
        })
    }

    /// Runs all configured steps, returning the trace (first row at t = 0).
    pub fn run(&mut self) -> Result<Vec<TraceRow>> {
        let every = self.cfg.record_every.max(1);
        let mut rows = vec![self.observe(0)?];
        for step in 1..=self.cfg.steps {
            self.step()?;
            if step % every == 0 || step == self.cfg.steps {
                rows.push(self.observe(step)?);
            }
        }
        Ok(rows)
    }
}

fn axpy_state(s: &SimState, k: &Deriv, h: f64) -> SimState {
    let f = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x + h * y).collect();
    SimState {
        w: f(&s.w, &k.w),
        wa: f(&s.wa, &k.wa),
        wp: f(&s.wp, &k.wp),
    }
}

fn symmetrise(a: &[f64], n: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            out[i * n + j] = 0.5 * (a[i * n + j] + a[j * n + i]);
        }
    }
    out
}

/// Standard normal sample (Box–Muller; avoids a rand_distr dependency).
pub(crate) fn gaussian(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}
