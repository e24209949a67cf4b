//! The `--data` specification: which dataset to learn from, as one string that fits a flag or
//! a TOML config (`fashion-mnist`, `idx:IMAGES[,LABELS]`, `cifar10:DIR`,
//! `stl10:DIR[:unlabeled|train|test|train+unlabeled]`, `synthetic[:COUNT]`), and the `WxH`
//! frame size.

use super::stl::StlSplit;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Frames a `synthetic` spec yields when no count is given.
pub const DEFAULT_SYNTHETIC_COUNT: usize = 4096;

/// A dataset named by `--data`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum DataSpec {
    /// Fashion-MNIST from the cache folder, fetched on first use.
    #[default]
    FashionMnist,
    /// Any IDX image file, with an optional label file.
    Idx {
        /// Image file (`N x H x W`).
        images: PathBuf,
        /// Label file (`N`).
        labels: Option<PathBuf>,
    },
    /// CIFAR-10 binary batches in a folder.
    Cifar10 {
        /// Folder with `data_batch_*.bin` (or its parent).
        dir: PathBuf,
    },
    /// STL-10 binary files in a folder.
    Stl10 {
        /// Folder with `*_X.bin` (or its parent).
        dir: PathBuf,
        /// Split used for pretraining (default: unlabeled).
        split: StlSplit,
    },
    /// Built-in synthetic blob images (no files needed).
    Synthetic {
        /// Number of frames.
        count: usize,
    },
}

const SPEC_HELP: &str = "expected fashion-mnist, idx:IMAGES[,LABELS], cifar10:DIR, stl10:DIR[:unlabeled|train|test|train+unlabeled] or synthetic[:COUNT]";

impl FromStr for DataSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, rest) = match s.split_once(':') {
            Some((k, r)) => (k, Some(r)),
            None => (s, None),
        };
        let need = |what: &str| -> Result<&str, String> {
            match rest {
                Some(r) if !r.is_empty() => Ok(r),
                _ => Err(format!("--data {s}: {kind} needs {what} ({SPEC_HELP})")),
            }
        };
        match kind {
            "fashion-mnist" | "fashion_mnist" | "fmnist" if rest.is_none() => {
                Ok(DataSpec::FashionMnist)
            }
            "idx" => {
                let r = need("IMAGES[,LABELS]")?;
                let (images, labels) = match r.split_once(',') {
                    Some((i, l)) => (i, Some(PathBuf::from(l))),
                    None => (r, None),
                };
                Ok(DataSpec::Idx {
                    images: images.into(),
                    labels,
                })
            }
            "cifar10" | "cifar-10" => Ok(DataSpec::Cifar10 {
                dir: need("DIR")?.into(),
            }),
            "stl10" | "stl-10" => {
                let r = need("DIR")?;
                let named = r
                    .rsplit_once(':')
                    .and_then(|(d, name)| Some((d, StlSplit::from_stem(name)?)));
                let (dir, split) = named.unwrap_or((r, StlSplit::Unlabeled));
                Ok(DataSpec::Stl10 {
                    dir: dir.into(),
                    split,
                })
            }
            "synthetic" => match rest {
                None => Ok(DataSpec::Synthetic {
                    count: DEFAULT_SYNTHETIC_COUNT,
                }),
                Some(n) => match n.parse::<usize>() {
                    Ok(count) if count > 0 => Ok(DataSpec::Synthetic { count }),
                    _ => Err(format!("--data {s}: COUNT must be a positive integer")),
                },
            },
            _ => Err(format!("--data {s}: {SPEC_HELP}")),
        }
    }
}

impl fmt::Display for DataSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSpec::FashionMnist => write!(f, "fashion-mnist"),
            DataSpec::Idx {
                images,
                labels: None,
            } => write!(f, "idx:{}", images.display()),
            DataSpec::Idx {
                images,
                labels: Some(l),
            } => {
                write!(f, "idx:{},{}", images.display(), l.display())
            }
            DataSpec::Cifar10 { dir } => write!(f, "cifar10:{}", dir.display()),
            DataSpec::Stl10 { dir, split } => write!(f, "stl10:{}:{}", dir.display(), split.stem()),
            DataSpec::Synthetic { count } => write!(f, "synthetic:{count}"),
        }
    }
}

impl From<DataSpec> for String {
    fn from(spec: DataSpec) -> String {
        spec.to_string()
    }
}

impl TryFrom<String> for DataSpec {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// A `WIDTHxHEIGHT` frame size (`--stream-size 640x480`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct FrameSize {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
}

impl FromStr for FrameSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parsed = s.split_once(['x', 'X']).and_then(|(w, h)| {
            Some((
                w.trim().parse::<usize>().ok()?,
                h.trim().parse::<usize>().ok()?,
            ))
        });
        match parsed {
            Some((width, height)) if width > 0 && height > 0 => Ok(FrameSize { width, height }),
            _ => Err(format!(
                "'{s}' is not a frame size: expected WIDTHxHEIGHT, e.g. 640x480"
            )),
        }
    }
}

impl fmt::Display for FrameSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl From<FrameSize> for String {
    fn from(size: FrameSize) -> String {
        size.to_string()
    }
}

impl TryFrom<String> for FrameSize {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_back() {
        for text in [
            "fashion-mnist",
            "idx:a/train-images.gz",
            "idx:a/img.idx,a/lab.idx",
            "cifar10:/data/cifar",
            "stl10:/data/stl:train",
            "stl10:/data/stl:unlabeled",
            "stl10:/data/stl:train+unlabeled",
            "synthetic:12",
        ] {
            let spec: DataSpec = text.parse().unwrap();
            assert_eq!(spec.to_string(), text);
        }
        assert_eq!(
            "stl10:d".parse::<DataSpec>().unwrap(),
            DataSpec::Stl10 {
                dir: "d".into(),
                split: StlSplit::Unlabeled
            }
        );
        for bad in [
            "",
            "imagenet",
            "idx",
            "idx:",
            "cifar10",
            "synthetic:0",
            "fashion-mnist:x",
        ] {
            assert!(bad.parse::<DataSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn frame_sizes_parse() {
        assert_eq!(
            "640x480".parse::<FrameSize>().unwrap(),
            FrameSize {
                width: 640,
                height: 480
            }
        );
        for bad in ["640", "0x4", "ax4", "4x", "-1x2"] {
            assert!(bad.parse::<FrameSize>().is_err(), "{bad}");
        }
    }
}
