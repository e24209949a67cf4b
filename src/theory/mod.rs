//! The paper's linear model of non-contrastive learning (Tian, Chen & Ganguli 2021, Lemma 1),
//! integrated numerically so its claims can be watched and tested: without a predictor or
//! without stop-gradient the weights collapse; with both, the predictor's eigenspace aligns with
//! `F = W X Wᵀ` and each mode settles at the non-collapsed fixed point `p*₊`.

pub mod modes;
pub mod presets;
pub mod run;
pub mod simulator;
pub mod trace;

pub use modes::{ModeParams, ModePoint};
pub use presets::{Experiment, ModeSweep, Overrides, PRESETS, Preset, preset};
pub use run::{RunOutput, run_preset};
pub use simulator::{
    DirectPredForm, Integrator, LinearSim, PredictorMode, SimConfig, SimState, TargetMode,
};
pub use trace::{TraceRow, write_trace_csv};
