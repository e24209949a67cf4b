//! What a pretraining checkpoint holds.

use crate::config::TrainConfig;
use crate::data::reservoir::Reservoir;
use crate::data::{AugmentConfig, DataArgs};
use crate::ssl::state::LearnerState;
use serde::{Deserialize, Serialize};

/// The whole state of a run: enough to continue it exactly (finite datasets: batch `t` is a
/// function of the seed and `t`; streams: the replay buffer continues).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunCheckpoint {
    /// The training config the run was started with.
    pub config: TrainConfig,
    /// Where the frames came from.
    pub data: DataArgs,
    /// How frames became views.
    pub augment: AugmentConfig,
    /// Networks, optimiser state, F and step count.
    pub learner: LearnerState,
    /// The replay buffer of a stream run.
    pub replay: Option<Reservoir>,
    /// Frames consumed so far (all runs of this job together).
    pub frames_seen: u64,
    /// Training seconds so far (all runs of this job together).
    pub train_secs: f64,
}
