//! Non-contrastive SSL: the predictor rules (BYOL MLP, trained linear, DirectPred, DirectCopy,
//! none), the correlation estimate F they read, the EMA target, the loss, and the learner that
//! runs one training step.
//!
//! The methods differ only in how the predictor and the target are produced: the predictor by
//! a [`PredictorRule`], the target by [`TargetConfig`] (EMA momentum, stop-gradient).

pub mod config;
pub mod correlation;
pub mod directcopy;
pub mod directpred;
pub mod ema;
pub mod error;
pub mod learner;
pub mod linear;
pub mod loss;
pub mod mlp;
pub mod none;
pub mod predictor;
pub mod set_from_correlation;
pub mod state;
pub mod symmetric_eigen;

pub use config::{MethodConfig, OptimConfig, PredictorKind, TargetConfig};
pub use correlation::CorrelationEstimate;
pub use error::SslError;
pub use learner::{Learner, OnlineNetwork, StepStats};
pub use predictor::{PredictorNet, PredictorRule};
