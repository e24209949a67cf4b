//! Picking the batch size for a memory budget from the accounting model.

use super::accounting::{MemoryEstimate, estimate};
use crate::config::TrainConfig;

/// The smallest batch BatchNorm can train with.
pub const MIN_BATCH: usize = 2;

/// Batches above this are not searched (the accounting would overflow long before).
const MAX_BATCH: usize = 1 << 24;

/// Why no batch size fits.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BudgetError {
    /// Even the smallest batch needs more than the budget.
    #[error(
        "memory budget {budget_mib:.1} MiB is too small for {method}: even batch {min_batch} needs \
         about {needed_mib:.1} MiB (parameters, optimizer state, target and process baseline \
         alone take {fixed_mib:.1} MiB); raise the budget, or shrink the trunk (--width, \
         --image-size) or the heads"
    )]
    TooSmall {
        /// The method's label.
        method: String,
        /// The budget in MiB.
        budget_mib: f64,
        /// The smallest batch tried.
        min_batch: usize,
        /// What that batch needs, in MiB.
        needed_mib: f64,
        /// The batch-independent part, in MiB.
        fixed_mib: f64,
    },
}

/// The largest batch (frames; each gives two views) whose predicted peak fits in
/// `budget_bytes`, for the model, method and optimiser of `config`, with `baseline` bytes of
/// process overhead (see [`super::accounting::DEFAULT_BASELINE_BYTES`]).
///
/// The prediction is increasing in the batch, so a binary search finds the exact largest one.
pub fn largest_batch(
    config: &TrainConfig,
    budget_bytes: u64,
    baseline: u64,
) -> Result<usize, BudgetError> {
    let at = |batch: usize| -> MemoryEstimate {
        estimate(
            &config.model,
            &config.method,
            &config.optim,
            batch,
            baseline,
        )
    };
    let smallest = at(MIN_BATCH);
    if smallest.total() > budget_bytes {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        return Err(BudgetError::TooSmall {
            method: config.method.label(),
            budget_mib: mib(budget_bytes),
            min_batch: MIN_BATCH,
            needed_mib: mib(smallest.total()),
            // Every batch-dependent term is zero at batch 0: what remains is fixed.
            fixed_mib: mib(at(0).total()),
        });
    }
    // Invariant: `lo` fits; `hi` does not (or is past the search range).
    let (mut lo, mut hi) = (MIN_BATCH, MIN_BATCH * 2);
    while hi <= MAX_BATCH && at(hi).total() <= budget_bytes {
        lo = hi;
        hi *= 2;
    }
    hi = hi.min(MAX_BATCH + 1);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if at(mid).total() <= budget_bytes {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}
