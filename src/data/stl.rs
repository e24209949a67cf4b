//! STL-10 binary files (`train_X.bin`/`train_y.bin`, `test_X.bin`/`test_y.bin`,
//! `unlabeled_X.bin`): 96x96 colour images of 27 648 bytes each, every channel stored
//! column-major (MATLAB order: red columns, then green, then blue); labels are bytes 1–10,
//! mapped here to 0–9.

use super::{DataError, Frame, FrameSource};
use std::path::{Path, PathBuf};

/// Image side.
pub const SIDE: usize = 96;
/// Bytes of one image.
pub const IMAGE_BYTES: usize = 3 * SIDE * SIDE;
/// Classes.
pub const CLASSES: usize = 10;

/// Which STL-10 split to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StlSplit {
    /// 5 000 labelled training images.
    Train,
    /// 8 000 labelled test images.
    Test,
    /// 100 000 unlabelled images (2.8 GB in memory at full size).
    Unlabeled,
}

impl StlSplit {
    /// File name stem (`train`, `test`, `unlabeled`).
    pub fn stem(self) -> &'static str {
        match self {
            StlSplit::Train => "train",
            StlSplit::Test => "test",
            StlSplit::Unlabeled => "unlabeled",
        }
    }
}

/// The folder holding the files: `dir` itself or the `stl10_binary` folder the official
/// archive unpacks to.
pub fn binary_dir(dir: &Path) -> PathBuf {
    let nested = dir.join("stl10_binary");
    if !dir.join("train_X.bin").exists() && !dir.join("unlabeled_X.bin").exists() && nested.is_dir()
    {
        nested
    } else {
        dir.to_path_buf()
    }
}

/// STL-10 images held in memory in their file order.
#[derive(Debug)]
pub struct StlSource {
    description: String,
    images: Vec<u8>,
    labels: Option<Vec<u8>>,
    count: usize,
    next: usize,
}

impl StlSource {
    /// Opens one split under `dir`.
    pub fn open_dir(dir: &Path, split: StlSplit) -> Result<Self, DataError> {
        let dir = binary_dir(dir);
        let x = dir.join(format!("{}_X.bin", split.stem()));
        let y = (split != StlSplit::Unlabeled).then(|| dir.join(format!("{}_y.bin", split.stem())));
        let mut source = Self::open_files(&x, y.as_deref())?;
        source.description = format!(
            "STL-10 {} from {} ({} images 96x96x3)",
            split.stem(),
            dir.display(),
            source.count
        );
        Ok(source)
    }

    /// Opens an image file and an optional label file.
    pub fn open_files(images: &Path, labels: Option<&Path>) -> Result<Self, DataError> {
        let bytes = std::fs::read(images).map_err(|e| DataError::io(images, e))?;
        if bytes.is_empty() || bytes.len() % IMAGE_BYTES != 0 {
            return Err(DataError::format(
                images,
                format!(
                    "{} bytes is not a whole number of {IMAGE_BYTES}-byte STL-10 images",
                    bytes.len()
                ),
            ));
        }
        let count = bytes.len() / IMAGE_BYTES;
        let labels = match labels {
            None => None,
            Some(path) => {
                let l = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
                if l.len() != count {
                    return Err(DataError::format(
                        path,
                        format!(
                            "{} labels for {count} images in {}",
                            l.len(),
                            images.display()
                        ),
                    ));
                }
                if let Some(pos) = l.iter().position(|&v| v == 0 || v as usize > CLASSES) {
                    return Err(DataError::format(
                        path,
                        format!("label {pos} is {} (STL-10 labels are 1-10)", l[pos]),
                    ));
                }
                Some(l)
            }
        };
        Ok(StlSource {
            description: format!("STL-10 {} ({count} images 96x96x3)", images.display()),
            images: bytes,
            labels,
            count,
            next: 0,
        })
    }
}

/// Converts one image from per-channel column-major to interleaved row-major.
fn image_to_frame(image: &[u8], label: Option<u32>) -> Frame {
    let plane = SIDE * SIDE;
    let mut pixels = vec![0u8; IMAGE_BYTES];
    for c in 0..3 {
        for x in 0..SIDE {
            let column = &image[c * plane + x * SIDE..c * plane + (x + 1) * SIDE];
            for (y, &v) in column.iter().enumerate() {
                pixels[(y * SIDE + x) * 3 + c] = v;
            }
        }
    }
    Frame {
        width: SIDE,
        height: SIDE,
        channels: 3,
        pixels,
        label,
    }
}

impl FrameSource for StlSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, DataError> {
        if self.next >= self.count {
            return Ok(None);
        }
        let i = self.next;
        self.next += 1;
        let label = self.labels.as_ref().map(|l| l[i] as u32 - 1);
        Ok(Some(image_to_frame(
            &self.images[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES],
            label,
        )))
    }

    fn len_hint(&self) -> Option<usize> {
        Some(self.count - self.next)
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn classes(&self) -> Option<usize> {
        self.labels.as_ref().map(|_| CLASSES)
    }
}
