//! CIFAR-10 binary batches (`data_batch_1.bin` … `data_batch_5.bin`, `test_batch.bin`):
//! 10 000 records per file, each one label byte (0–9) then 3072 bytes of 32x32 pixels,
//! channel-planar (all red, then green, then blue, rows top to bottom).

use super::{DataError, Frame, FrameSource};
use std::path::{Path, PathBuf};

/// Image side.
pub const SIDE: usize = 32;
/// Bytes of one record: label + 3 x 32 x 32.
pub const RECORD: usize = 1 + 3 * SIDE * SIDE;
/// Classes.
pub const CLASSES: usize = 10;
/// Training batch files, in order.
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// Test batch file.
pub const TEST_FILE: &str = "test_batch.bin";

/// Records of one or more CIFAR-10 batch files, held in memory.
#[derive(Debug)]
pub struct CifarSource {
    description: String,
    records: Vec<u8>,
    count: usize,
    next: usize,
}

/// The folder holding the batch files: `dir` itself or the `cifar-10-batches-bin` folder the
/// official archive unpacks to.
pub fn batches_dir(dir: &Path) -> PathBuf {
    let nested = dir.join("cifar-10-batches-bin");
    if !dir.join(TEST_FILE).exists() && !dir.join(TRAIN_FILES[0]).exists() && nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    }
}

impl CifarSource {
    /// The five training batches (`train = true`) or the test batch under `dir`.
    pub fn open_dir(dir: &Path, train: bool) -> Result<Self, DataError> {
        let dir = batches_dir(dir);
        let names: Vec<&str> = if train {
            TRAIN_FILES.to_vec()
        } else {
            vec![TEST_FILE]
        };
        let paths: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
        if let Some(missing) = paths.iter().find(|p| !p.exists()) {
            return Err(DataError::format(
                missing,
                "CIFAR-10 batch file missing (expected the binary version: data_batch_1..5.bin, test_batch.bin)",
            ));
        }
        let split = if train { "train" } else { "test" };
        Self::open_files(&paths, &format!("CIFAR-10 {split} from {}", dir.display()))
    }

    /// Any list of batch files, concatenated.
    pub fn open_files(paths: &[PathBuf], description: &str) -> Result<Self, DataError> {
        let mut records = Vec::new();
        for path in paths {
            let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
            if bytes.is_empty() || bytes.len() % RECORD != 0 {
                return Err(DataError::format(
                    path,
                    format!(
                        "{} bytes is not a whole number of {RECORD}-byte CIFAR-10 records",
                        bytes.len()
                    ),
                ));
            }
            if let Some(pos) = bytes
                .chunks_exact(RECORD)
                .position(|r| r[0] as usize >= CLASSES)
            {
                return Err(DataError::format(
                    path,
                    format!(
                        "record {pos} has label {} (CIFAR-10 labels are 0-9; is this CIFAR-100?)",
                        bytes[pos * RECORD]
                    ),
                ));
            }
            records.extend_from_slice(&bytes);
        }
        let count = records.len() / RECORD;
        Ok(CifarSource {
            description: format!("{description} ({count} images 32x32x3)"),
            records,
            count,
            next: 0,
        })
    }
}

/// Converts one record's channel-planar pixels to an interleaved frame.
fn record_to_frame(record: &[u8]) -> Frame {
    let plane = SIDE * SIDE;
    let chw = &record[1..];
    let mut pixels = Vec::with_capacity(3 * plane);
    for i in 0..plane {
        pixels.extend_from_slice(&[chw[i], chw[plane + i], chw[2 * plane + i]]);
    }
    Frame {
        width: SIDE,
        height: SIDE,
        channels: 3,
        pixels,
        label: Some(record[0] as u32),
    }
}

impl FrameSource for CifarSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, DataError> {
        if self.next >= self.count {
            return Ok(None);
        }
        let i = self.next;
        self.next += 1;
        Ok(Some(record_to_frame(
            &self.records[i * RECORD..(i + 1) * RECORD],
        )))
    }

    fn len_hint(&self) -> Option<usize> {
        Some(self.count - self.next)
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn classes(&self) -> Option<usize> {
        Some(CLASSES)
    }
}
