//! A collapse detector for the trainer: warns as soon as the embedding spread drops below a
//! threshold and asks to stop after it has stayed there for `patience` consecutive checks, or at
//! once on a non-finite loss. Stopping early saves an edge device hours of useless compute.

use super::LogRecord;

/// What the trainer should do after a check.
#[derive(Debug, Clone, PartialEq)]
pub enum GuardDecision {
    /// Healthy.
    Continue,
    /// Collapse suspected; keep training but tell the user.
    Warn(String),
    /// Collapsed (or diverged) for long enough: stop the run.
    Stop(String),
}

/// Tracks consecutive low-spread checks.
#[derive(Debug, Clone)]
pub struct CollapseGuard {
    /// `collapse_std` below this counts as a collapsed check (healthy ≈ 1, collapsed 0).
    pub threshold: f64,
    /// Number of consecutive collapsed checks before [`GuardDecision::Stop`].
    pub patience: usize,
    /// Optional floor on the effective rank of F; below it a check also counts as collapsed.
    pub min_effective_rank: Option<f64>,
    strikes: usize,
}

impl Default for CollapseGuard {
    /// Threshold 0.1 and patience 3: a complete collapse shows `collapse_std` near 1e-3, a
    /// healthy BYOL run stays above 0.5, so 0.1 leaves room on both sides.
    fn default() -> Self {
        Self::new(0.1, 3)
    }
}

impl CollapseGuard {
    /// A guard with the given threshold and patience (`patience` 0 is treated as 1).
    pub fn new(threshold: f64, patience: usize) -> Self {
        Self {
            threshold,
            patience: patience.max(1),
            min_effective_rank: None,
            strikes: 0,
        }
    }

    /// Also treat an effective rank of F below `rank` as collapse.
    pub fn with_min_effective_rank(mut self, rank: f64) -> Self {
        self.min_effective_rank = Some(rank);
        self
    }

    /// Number of consecutive collapsed checks so far.
    pub fn strikes(&self) -> usize {
        self.strikes
    }

    /// Judges one check given the measured spread and (optionally) effective rank.
    pub fn observe(&mut self, collapse_std: f64, effective_rank: Option<f64>) -> GuardDecision {
        let mut reasons = Vec::new();
        if !collapse_std.is_finite() || collapse_std < self.threshold {
            reasons.push(format!(
                "output spread {collapse_std:.4} below {:.4}",
                self.threshold
            ));
        }
        if let (Some(floor), Some(rank)) = (self.min_effective_rank, effective_rank)
            && (!rank.is_finite() || rank < floor)
        {
            reasons.push(format!("effective rank {rank:.2} below {floor:.2}"));
        }
        if reasons.is_empty() {
            self.strikes = 0;
            return GuardDecision::Continue;
        }
        self.strikes += 1;
        let why = reasons.join(", ");
        if self.strikes >= self.patience {
            GuardDecision::Stop(format!(
                "representation collapsed: {why} for {} consecutive checks",
                self.strikes
            ))
        } else {
            GuardDecision::Warn(format!(
                "possible collapse: {why} ({}/{})",
                self.strikes, self.patience
            ))
        }
    }

    /// Judges a log record: a non-finite loss stops at once; otherwise uses its `collapse_std`
    /// and `effective_rank` (a record without `collapse_std` counts as healthy).
    pub fn observe_record(&mut self, record: &LogRecord) -> GuardDecision {
        if !record.loss.is_finite() {
            return GuardDecision::Stop(format!(
                "loss is {} at step {}: training diverged",
                record.loss, record.step
            ));
        }
        match record.collapse_std {
            Some(spread) => self.observe(spread, record.effective_rank),
            None => GuardDecision::Continue,
        }
    }
}
