//! Training-time monitors that make the paper's explanation visible on a real run:
//! eigenspace alignment of the predictor with the correlation matrix F, collapse indicators,
//! a JSONL/CSV training log, and a collapse guard the trainer can consult.

pub mod alignment;
pub mod collapse;
pub mod guard;
pub mod linalg;
pub mod log;
pub mod snapshot;

pub use alignment::{AlignmentReport, asymmetry, eigen_alignment, relative_commutator};
pub use collapse::{collapse_std, effective_rank, effective_rank_of};
pub use guard::{CollapseGuard, GuardDecision};
pub use log::{LogRecord, LogWriter, read_jsonl, write_csv};
pub use snapshot::{MonitorSnapshot, output_correlation};

use thiserror::Error;

/// Errors of the monitors: bad shapes, non-finite inputs, failed eigensolves.
#[derive(Debug, Error)]
pub enum MonitorError {
    /// An argument whose length does not match the stated shape.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// NaN or infinity in the named argument (the run has probably diverged).
    #[error("{0} contains NaN or infinite values")]
    NonFinite(String),
    /// The symmetric eigensolver did not converge.
    #[error("eigendecomposition failed: {0}")]
    Eigen(String),
    /// An out-of-range option.
    #[error("{0}")]
    Invalid(String),
}
