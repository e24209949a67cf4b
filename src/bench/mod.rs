//! Benchmarks users run on their own device: accuracy of every method at one budget, training memory per method (measured in a fresh
//! process each, next to an accounting model), the largest batch for a memory budget, and
//! training throughput against an sgemm roof and the PyTorch peer.
//!
//! - [`accuracy`]: `bench accuracy`, every method and ablation at one budget.
//! - [`accounting`]: bytes per category of one step, counted from layer shapes.
//! - [`budget`]: the largest batch that fits a budget.
//! - [`child`]: one measurement in a re-executed child process.
//! - [`memory`]: `bench memory` rows and tables.
//! - [`flops`], [`roof`], [`throughput`]: `bench throughput`.
//! - [`pytorch`]: running `benches/pytorch_reference.py`.
//! - [`op_profile`]: the `--profile-ops` tables.

pub mod accounting;
pub mod accuracy;
pub mod budget;
pub mod child;
pub mod flops;
pub mod memory;
pub mod op_profile;
pub mod pytorch;
pub mod roof;
pub mod table;
pub mod throughput;

pub use accounting::{MemoryEstimate, ParamCounts, estimate};
pub use budget::{BudgetError, largest_batch};
pub use flops::StepFlops;
