//! The decoupled per-mode dynamics once `Wp` and `F` share eigenvectors (paper, Sec. 4):
//!
//! ```text
//! ṗ = αp s [τ − (1+σ²) p] − η p
//! ṡ = 2 p s [τ − (1+σ²) p] − 2 η s
//! ```
//!
//! `p` is Wp's eigenvalue on the mode, `s` F's, `τ` the target's ratio `Wa ≈ τ W` on the mode.
//! A non-collapsed equilibrium (`s > 0`) needs `p [τ − (1+σ²) p] = η`, whose roots are
//! `p*± = [τ ± √(τ² − 4η(1+σ²))] / (2(1+σ²))`; `p*₊` is stable, `p < p*₋` makes `ṡ < 0`
//! (the collapse basin), and for `η > τ²/(4(1+σ²))` no root exists: every mode collapses.

use serde::{Deserialize, Serialize};

/// Parameters of one mode's dynamics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ModeParams {
    /// Relative predictor learning rate.
    pub alpha_p: f64,
    /// Target/online ratio on this mode (1 for SimSiam and for a converged EMA).
    pub tau: f64,
    /// Weight decay.
    pub eta: f64,
    /// Augmentation noise (the mode's `X'` eigenvalue is `σ²`).
    pub sigma: f64,
}

/// One point of a mode trajectory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModePoint {
    /// Time.
    pub t: f64,
    /// Predictor eigenvalue.
    pub p: f64,
    /// Eigenvalue of F.
    pub s: f64,
}

impl ModeParams {
    /// `1 + σ²`.
    fn gain(&self) -> f64 {
        1.0 + self.sigma * self.sigma
    }

    /// `η_c = τ² / (4(1+σ²))`: above it, every mode collapses.
    pub fn critical_eta(&self) -> f64 {
        self.tau * self.tau / (4.0 * self.gain())
    }

    /// The roots `(p*₋, p*₊)` of `(1+σ²)p² − τp + η = 0`, or `None` when `η > η_c`.
    pub fn fixed_points(&self) -> Option<(f64, f64)> {
        let disc = self.tau * self.tau - 4.0 * self.eta * self.gain();
        if disc < 0.0 {
            return None;
        }
        let r = disc.sqrt();
        let two_g = 2.0 * self.gain();
        Some(((self.tau - r) / two_g, (self.tau + r) / two_g))
    }

    /// The value of `s` at the stable equilibrium for `η > 0`: `ṗ = 0` with
    /// `p[τ − (1+σ²)p] = η` gives `s* = p*₊² / αp`.
    pub fn stable_s(&self) -> Option<f64> {
        let (_, p_plus) = self.fixed_points()?;
        (self.eta > 0.0 && self.alpha_p > 0.0).then(|| p_plus * p_plus / self.alpha_p)
    }

    /// `(ṗ, ṡ)` at `(p, s)`.
    pub fn derivative(&self, p: f64, s: f64) -> (f64, f64) {
        let drive = self.tau - self.gain() * p;
        (
            self.alpha_p * s * drive - self.eta * p,
            2.0 * p * s * drive - 2.0 * self.eta * s,
        )
    }

    /// Integrates from `(p0, s0)` with RK4 for `steps` steps of `dt`, recording every
    /// `record_every` steps (and the first and last). Stops early if the state stops being
    /// finite, so a too-large `dt` shows as a short trajectory rather than NaNs.
    pub fn simulate(
        &self,
        p0: f64,
        s0: f64,
        dt: f64,
        steps: usize,
        record_every: usize,
    ) -> Vec<ModePoint> {
        let every = record_every.max(1);
        let (mut p, mut s) = (p0, s0);
        let mut out = vec![ModePoint { t: 0.0, p, s }];
        for k in 1..=steps {
            let (a1, b1) = self.derivative(p, s);
            let (a2, b2) = self.derivative(p + 0.5 * dt * a1, s + 0.5 * dt * b1);
            let (a3, b3) = self.derivative(p + 0.5 * dt * a2, s + 0.5 * dt * b2);
            let (a4, b4) = self.derivative(p + dt * a3, s + dt * b3);
            p += dt / 6.0 * (a1 + 2.0 * a2 + 2.0 * a3 + a4);
            s += dt / 6.0 * (b1 + 2.0 * b2 + 2.0 * b3 + b4);
            if !p.is_finite() || !s.is_finite() {
                break;
            }
            if k % every == 0 || k == steps {
                out.push(ModePoint {
                    t: k as f64 * dt,
                    p,
                    s,
                });
            }
        }
        out
    }
}
