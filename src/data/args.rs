//! `DataArgs`: the command-line flags that choose where frames come from. Subcommands that
//! learn from data (`edgessl pretrain`, `edgessl data …`) flatten it into their own options.

use super::loader::ReplayConfig;
use super::spec::{DataSpec, FrameSize};
pub use super::stream::StreamFormat;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where the frames come from. `--stream` wins over `--frames`, which wins over `--data`.
#[derive(clap::Args, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataArgs {
    /// Dataset: fashion-mnist (fetched into the cache on first use), idx:IMAGES[,LABELS],
    /// cifar10:DIR, stl10:DIR[:unlabeled|train|test|train+unlabeled] or synthetic[:COUNT].
    // The brackets are the help text's notation for optional parts, not doc links.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(long, value_name = "SPEC", default_value = "fashion-mnist")]
    pub data: DataSpec,

    /// Learn from an image folder instead (PNG/JPEG/PGM/PPM, recursive; first-level
    /// sub-folder names become labels).
    #[arg(long, value_name = "DIR", conflicts_with = "stream")]
    pub frames: Option<PathBuf>,

    /// Learn from raw video frames in a file, FIFO or stdin (`-`), as written by
    /// `ffmpeg -f rawvideo -pix_fmt gray|rgb24`.
    #[arg(long, value_name = "PATH|-")]
    pub stream: Option<String>,

    /// Pixel format of --stream.
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "gray8")]
    pub stream_format: StreamFormat,

    /// Frame size of --stream (required with it).
    #[arg(long, value_name = "WxH")]
    pub stream_size: Option<FrameSize>,

    /// Keep only every K-th frame of --stream (neighbouring frames are near duplicates).
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub stream_every: usize,

    /// Replay buffer for --stream, in MiB (0 disables replay).
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub replay_mib: usize,

    /// Fraction of each --stream batch drawn from the replay buffer once it has frames.
    #[arg(long, value_name = "F", default_value_t = 0.5)]
    pub replay_fraction: f32,

    /// Treat an unreadable image in --frames as an error instead of skipping and counting it.
    #[arg(long)]
    pub strict_images: bool,
}

impl Default for DataArgs {
    fn default() -> Self {
        DataArgs {
            data: DataSpec::FashionMnist,
            frames: None,
            stream: None,
            stream_format: StreamFormat::Gray8,
            stream_size: None,
            stream_every: 1,
            replay_mib: 64,
            replay_fraction: 0.5,
            strict_images: false,
        }
    }
}

impl DataArgs {
    /// Whether the frames come from an endless stream rather than a finite dataset.
    pub fn is_stream(&self) -> bool {
        self.stream.is_some()
    }

    /// The replay configuration for a stream (`None` for datasets or with `--replay-mib 0`).
    pub fn replay_config(&self) -> Option<ReplayConfig> {
        (self.is_stream() && self.replay_mib > 0).then(|| ReplayConfig {
            budget_bytes: self.replay_mib.saturating_mul(1 << 20),
            fraction: self.replay_fraction,
            restore: None,
        })
    }
}
