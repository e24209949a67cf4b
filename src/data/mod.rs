//! Frames in, augmented view pairs out: the data half of the pipeline
//! (frames → augment → encoder/heads → method → step → checkpoint).

pub mod args;
pub mod augment;
pub mod cifar;
pub mod dataset;
pub mod fetch;
pub mod folder;
pub mod geometry;
pub mod idx;
pub mod labelled;
pub mod loader;
pub mod open;
pub mod reservoir;
mod seeding;
pub mod spec;
pub mod stl;
pub mod stream;
pub mod synthetic;

pub use args::{DataArgs, StreamFormat};
pub use augment::AugmentConfig;
pub use fetch::{default_cache_dir, ensure_fashion_mnist, ensure_vtest};
pub use labelled::{LabelledImages, Split};
pub use loader::{BatchLoader, ReplayConfig};
pub use open::{open_labelled_source, open_source};
pub use reservoir::Reservoir;
pub use spec::{DataSpec, FrameSize};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One decoded camera frame or dataset image, 8-bit, interleaved (HWC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// 1 (gray) or 3 (RGB).
    pub channels: usize,
    /// `height * width * channels` bytes, row-major, channels interleaved.
    pub pixels: Vec<u8>,
    /// Class label where the source has one (labelled datasets, sub-folder names).
    pub label: Option<u32>,
}

impl Frame {
    /// Number of bytes a frame of this geometry holds.
    pub fn byte_len(&self) -> usize {
        self.width * self.height * self.channels
    }
}

/// Anything that hands out frames one at a time: folders, datasets, camera streams.
pub trait FrameSource: Send {
    /// The next frame, `Ok(None)` at the end of a finite source.
    fn next_frame(&mut self) -> Result<Option<Frame>, DataError>;
    /// Number of frames if known up front (datasets), `None` for streams.
    fn len_hint(&self) -> Option<usize> {
        None
    }
    /// Human-readable description for logs and run configs.
    fn describe(&self) -> String;
    /// Number of inputs skipped so far as unreadable (corrupt images); 0 for most sources.
    fn skipped(&self) -> usize {
        0
    }
    /// Number of classes where the source is labelled and knows it up front.
    fn classes(&self) -> Option<usize> {
        None
    }
}

/// A batch of two augmented views of the same frames, ready for the encoder.
#[derive(Debug, Clone)]
pub struct ViewBatch {
    /// Number of frames (each contributes one sample to each view).
    pub batch: usize,
    /// Channels of the trunk's input.
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Two views, each `batch * channels * height * width` normalised f32, NCHW.
    pub views: [Vec<f32>; 2],
}

/// Errors of the data path. Each names the file or flag at fault.
#[derive(Debug, Error)]
pub enum DataError {
    /// I/O failure on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The file or stream.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file whose contents do not match its format.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A bad option value.
    #[error("{0}")]
    Invalid(String),
}

impl DataError {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    /// A format error in `path`.
    pub fn format(path: impl AsRef<std::path::Path>, message: impl Into<String>) -> Self {
        DataError::Format {
            path: path.as_ref().display().to_string(),
            message: message.into(),
        }
    }
}
