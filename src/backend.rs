//! Run-time choice among the burn backends compiled into this build.
//!
//! Model and training code is generic over `B: AutodiffBackend`; a command implements
//! [`BackendTask`] once and [`run_on`] instantiates it for the backend the user picked.

#[allow(unused_imports)] // unused in a build with no backend feature
use burn::backend::Autodiff;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A backend a user can ask for with `--backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// burn-flex: the default CPU backend (gemm + rayon).
    Flex,
    /// burn-ndarray CPU backend.
    Ndarray,
    /// burn-candle on the CPU.
    Candle,
    /// burn-candle on a CUDA GPU (feature `candle-cuda`).
    CandleCuda,
    /// burn-candle on Apple Metal (feature `candle-metal`).
    CandleMetal,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Flex => "flex",
            Self::Ndarray => "ndarray",
            Self::Candle => "candle",
            Self::CandleCuda => "candle-cuda",
            Self::CandleMetal => "candle-metal",
        };
        f.write_str(name)
    }
}

impl BackendKind {
    /// Backends compiled into this binary, in order of preference.
    #[allow(clippy::vec_init_then_push)] // each push depends on a cargo feature
    pub fn compiled() -> Vec<BackendKind> {
        let mut kinds = Vec::new();
        #[cfg(feature = "flex")]
        kinds.push(Self::Flex);
        #[cfg(feature = "ndarray")]
        kinds.push(Self::Ndarray);
        #[cfg(feature = "candle")]
        kinds.push(Self::Candle);
        #[cfg(feature = "candle-cuda")]
        kinds.push(Self::CandleCuda);
        #[cfg(feature = "candle-metal")]
        kinds.push(Self::CandleMetal);
        kinds
    }

    /// The first compiled backend (flex in a default build).
    pub fn default_compiled() -> BackendKind {
        Self::compiled().first().copied().unwrap_or(Self::Flex)
    }

    /// Whether the backend runs on the host CPU (memory figures are process RSS).
    pub fn is_cpu(self) -> bool {
        matches!(self, Self::Flex | Self::Ndarray | Self::Candle)
    }
}

/// Work that runs on any autodiff backend; [`run_on`] picks the concrete one.
pub trait BackendTask {
    /// What the task returns.
    type Output;
    /// Run on backend `B` and device `device`.
    fn run<B: AutodiffBackend>(self, device: B::Device, kind: BackendKind) -> Self::Output;
}

/// The error of asking for a backend this binary was built without.
#[derive(Debug, thiserror::Error)]
#[error(
    "--backend {requested}: not compiled into this build (compiled: {compiled}); rebuild with `--features {feature}`"
)]
pub struct BackendUnavailable {
    requested: BackendKind,
    compiled: String,
    feature: String,
}

/// Run `task` on the backend `kind`, or say which cargo feature would enable it.
#[allow(deprecated)] // burn-candle is deprecated upstream but is the GPU path of burn 0.21
pub fn run_on<T: BackendTask>(kind: BackendKind, task: T) -> Result<T::Output, BackendUnavailable> {
    match kind {
        #[cfg(feature = "flex")]
        BackendKind::Flex => {
            Ok(task.run::<Autodiff<burn::backend::Flex>>(Default::default(), kind))
        }
        #[cfg(feature = "ndarray")]
        BackendKind::Ndarray => {
            Ok(task.run::<Autodiff<burn::backend::NdArray>>(Default::default(), kind))
        }
        #[cfg(feature = "candle")]
        BackendKind::Candle => Ok(task.run::<Autodiff<burn::backend::Candle>>(
            burn::backend::candle::CandleDevice::Cpu,
            kind,
        )),
        #[cfg(feature = "candle-cuda")]
        BackendKind::CandleCuda => Ok(task.run::<Autodiff<burn::backend::Candle>>(
            burn::backend::candle::CandleDevice::cuda(0),
            kind,
        )),
        #[cfg(feature = "candle-metal")]
        BackendKind::CandleMetal => Ok(task.run::<Autodiff<burn::backend::Candle>>(
            burn::backend::candle::CandleDevice::metal(0),
            kind,
        )),
        #[allow(unreachable_patterns)]
        other => Err(BackendUnavailable {
            requested: other,
            compiled: compiled_list(),
            feature: other.to_string(),
        }),
    }
}

fn compiled_list() -> String {
    BackendKind::compiled()
        .iter()
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
