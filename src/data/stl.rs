//! STL-10 binary files (`train_X.bin`/`train_y.bin`, `test_X.bin`/`test_y.bin`,
//! `unlabeled_X.bin`): 96x96 colour images of 27 648 bytes each, every channel stored
//! column-major (MATLAB order: red columns, then green, then blue); labels are bytes 1–10,
//! mapped here to 0–9. `train+unlabeled` chains the two splits, the usual pretraining set.

use super::{DataError, Frame, FrameSource};
use std::fs::File;
use std::io::{BufReader, Read};
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
    /// 100 000 unlabelled images.
    Unlabeled,
    /// Train then unlabeled (105 000 images): the usual STL-10 pretraining set.
    TrainUnlabeled,
}

impl StlSplit {
    /// Name used in `--data stl10:DIR:NAME` (`train`, `test`, `unlabeled`, `train+unlabeled`).
    pub fn stem(self) -> &'static str {
        match self {
            StlSplit::Train => "train",
            StlSplit::Test => "test",
            StlSplit::Unlabeled => "unlabeled",
            StlSplit::TrainUnlabeled => "train+unlabeled",
        }
    }

    /// Parses a name produced by [`stem`](Self::stem).
    pub fn from_stem(name: &str) -> Option<Self> {
        [
            StlSplit::Train,
            StlSplit::Test,
            StlSplit::Unlabeled,
            StlSplit::TrainUnlabeled,
        ]
        .into_iter()
        .find(|s| s.stem() == name)
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

/// One image file (and its labels, if any), read image by image.
#[derive(Debug)]
struct Part {
    path: PathBuf,
    count: usize,
    labels: Option<Vec<u8>>,
}

/// STL-10 images in file order. Images are read from disk one at a time (the unlabeled split
/// is 2.8 GB), only labels are held in memory.
#[derive(Debug)]
pub struct StlSource {
    description: String,
    parts: Vec<Part>,
    /// Part being read, its open file, and the image index within it.
    part: usize,
    reader: Option<BufReader<File>>,
    index: usize,
    delivered: usize,
}

impl StlSource {
    /// Opens one split under `dir`.
    pub fn open_dir(dir: &Path, split: StlSplit) -> Result<Self, DataError> {
        let dir = binary_dir(dir);
        let stems: &[(&str, bool)] = match split {
            StlSplit::Train => &[("train", true)],
            StlSplit::Test => &[("test", true)],
            StlSplit::Unlabeled => &[("unlabeled", false)],
            StlSplit::TrainUnlabeled => &[("train", true), ("unlabeled", false)],
        };
        let parts = stems
            .iter()
            .map(|&(stem, labelled)| {
                let x = dir.join(format!("{stem}_X.bin"));
                let y = labelled.then(|| dir.join(format!("{stem}_y.bin")));
                open_part(&x, y.as_deref())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let count: usize = parts.iter().map(|p| p.count).sum();
        let description = format!(
            "STL-10 {} from {} ({count} images 96x96x3)",
            split.stem(),
            dir.display()
        );
        Ok(Self::from_parts(description, parts))
    }

    /// Opens an image file and an optional label file.
    pub fn open_files(images: &Path, labels: Option<&Path>) -> Result<Self, DataError> {
        let part = open_part(images, labels)?;
        let description = format!(
            "STL-10 {} ({} images 96x96x3)",
            images.display(),
            part.count
        );
        Ok(Self::from_parts(description, vec![part]))
    }

    fn from_parts(description: String, parts: Vec<Part>) -> Self {
        StlSource {
            description,
            parts,
            part: 0,
            reader: None,
            index: 0,
            delivered: 0,
        }
    }

    fn total(&self) -> usize {
        self.parts.iter().map(|p| p.count).sum()
    }
}

/// Checks an image file's size and reads and checks its labels.
fn open_part(images: &Path, labels: Option<&Path>) -> Result<Part, DataError> {
    let len = std::fs::metadata(images)
        .map_err(|e| DataError::io(images, e))?
        .len();
    if len == 0 || !len.is_multiple_of(IMAGE_BYTES as u64) {
        return Err(DataError::format(
            images,
            format!("{len} bytes is not a whole number of {IMAGE_BYTES}-byte STL-10 images"),
        ));
    }
    let count = (len / IMAGE_BYTES as u64) as usize;
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
    Ok(Part {
        path: images.to_path_buf(),
        count,
        labels,
    })
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
        loop {
            let Some(part) = self.parts.get(self.part) else {
                return Ok(None);
            };
            if self.index >= part.count {
                (self.part, self.index, self.reader) = (self.part + 1, 0, None);
                continue;
            }
            if self.reader.is_none() {
                let file = File::open(&part.path).map_err(|e| DataError::io(&part.path, e))?;
                self.reader = Some(BufReader::with_capacity(1 << 20, file));
            }
            let mut image = vec![0u8; IMAGE_BYTES];
            if let Some(reader) = self.reader.as_mut() {
                reader
                    .read_exact(&mut image)
                    .map_err(|e| DataError::io(&part.path, e))?;
            }
            // File labels are 1..=10; training code wants 0..=9.
            let label = part.labels.as_ref().map(|l| l[self.index] as u32 - 1);
            self.index += 1;
            self.delivered += 1;
            return Ok(Some(image_to_frame(&image, label)));
        }
    }

    fn len_hint(&self) -> Option<usize> {
        Some(self.total() - self.delivered)
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn classes(&self) -> Option<usize> {
        self.parts
            .iter()
            .any(|p| p.labels.is_some())
            .then_some(CLASSES)
    }
}
