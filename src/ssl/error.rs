//! Errors of the SSL core.

/// What can go wrong in a training step or a method's configuration.
#[derive(Debug, thiserror::Error)]
pub enum SslError {
    /// A configuration value out of range; the message names the key.
    #[error("invalid config: {0}")]
    Config(String),
    /// Non-finite values (loss or correlation): training diverged.
    #[error("training diverged at step {step}: {what} is not finite (try a lower learning rate)")]
    NonFinite {
        /// Step at which it was seen.
        step: u64,
        /// Which quantity.
        what: &'static str,
    },
    /// The symmetric eigensolver failed.
    #[error("eigendecomposition of the {dim}x{dim} correlation matrix failed: {reason}")]
    Eigen {
        /// Matrix size.
        dim: usize,
        /// The solver's reason.
        reason: String,
    },
    /// A batch whose shape does not match the model.
    #[error("batch shape {got} does not match the model input {expected}")]
    BatchShape {
        /// Shape of the batch.
        got: String,
        /// What the model takes.
        expected: String,
    },
}
