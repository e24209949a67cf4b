//! IDX files, the format of MNIST and Fashion-MNIST (`train-images-idx3-ubyte[.gz]`, …):
//! a magic number (two zero bytes, element type, dimension count), big-endian u32 sizes, then
//! the elements. Gzipped files are recognised by their bytes, not their name.

use super::{DataError, Frame, FrameSource};
use std::io::Read;
use std::path::{Path, PathBuf};

/// IDX element type code for unsigned bytes, the only one image datasets use.
const TYPE_U8: u8 = 0x08;

/// A decoded IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    /// Sizes, outermost first.
    pub dims: Vec<usize>,
    /// Elements in row-major order.
    pub data: Vec<u8>,
}

/// Reads a whole file, transparently un-gzipping it.
pub(crate) fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| DataError::format(path, format!("corrupt gzip data: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses an unsigned-byte IDX file (raw or gzipped).
pub fn read_idx(path: &Path) -> Result<IdxArray, DataError> {
    let bytes = read_maybe_gz(path)?;
    let bad = |m: String| DataError::format(path, m);
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad(
            "not an IDX file (magic number must start with two zero bytes)".into(),
        ));
    }
    if bytes[2] != TYPE_U8 {
        return Err(bad(format!(
            "IDX element type 0x{:02x} unsupported (need 0x08, unsigned byte)",
            bytes[2]
        )));
    }
    let ndims = bytes[3] as usize;
    if ndims == 0 {
        return Err(bad("IDX header declares 0 dimensions".into()));
    }
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(bad(format!(
            "truncated IDX header ({} bytes, need {header})",
            bytes.len()
        )));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let expected = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let body = bytes.len() - header;
    match expected {
        Some(n) if n == body => {}
        Some(n) => {
            return Err(bad(format!(
                "IDX dimensions {dims:?} need {n} bytes of data, file has {body}{}",
                if body < n { " (truncated?)" } else { "" }
            )));
        }
        None => return Err(bad(format!("IDX dimensions {dims:?} overflow"))),
    }
    let mut data = bytes;
    data.drain(..header);
    Ok(IdxArray { dims, data })
}

/// Images (and optionally labels) from IDX files, held in memory.
#[derive(Debug)]
pub struct IdxSource {
    images_path: PathBuf,
    width: usize,
    height: usize,
    channels: usize,
    count: usize,
    data: Vec<u8>,
    labels: Option<Vec<u8>>,
    next: usize,
}

impl IdxSource {
    /// Opens an image file (`N x H x W`, or `N x H x W x C` with C = 1 or 3) and an optional
    /// label file (`N`) that must hold as many entries.
    pub fn open(images: &Path, labels: Option<&Path>) -> Result<Self, DataError> {
        let arr = read_idx(images)?;
        let (count, height, width, channels) = match arr.dims[..] {
            [n, h, w] => (n, h, w, 1),
            [n, h, w, c] if c == 1 || c == 3 => (n, h, w, c),
            _ => {
                return Err(DataError::format(
                    images,
                    format!(
                        "IDX image file must be N x H x W (x 1|3), got dimensions {:?}",
                        arr.dims
                    ),
                ));
            }
        };
        if count == 0 || width == 0 || height == 0 {
            return Err(DataError::format(
                images,
                format!("IDX image file is empty: dimensions {:?}", arr.dims),
            ));
        }
        let labels = match labels {
            None => None,
            Some(path) => {
                let l = read_idx(path)?;
                if l.dims.len() != 1 {
                    return Err(DataError::format(
                        path,
                        format!("IDX label file must be 1-D, got {:?}", l.dims),
                    ));
                }
                if l.dims[0] != count {
                    return Err(DataError::format(
                        path,
                        format!(
                            "{} labels for {count} images in {}",
                            l.dims[0],
                            images.display()
                        ),
                    ));
                }
                Some(l.data)
            }
        };
        Ok(IdxSource {
            images_path: images.to_path_buf(),
            width,
            height,
            channels,
            count,
            data: arr.data,
            labels,
            next: 0,
        })
    }
}

impl FrameSource for IdxSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, DataError> {
        if self.next >= self.count {
            return Ok(None);
        }
        let size = self.width * self.height * self.channels;
        let i = self.next;
        self.next += 1;
        Ok(Some(Frame {
            width: self.width,
            height: self.height,
            channels: self.channels,
            pixels: self.data[i * size..(i + 1) * size].to_vec(),
            label: self.labels.as_ref().map(|l| l[i] as u32),
        }))
    }

    fn len_hint(&self) -> Option<usize> {
        Some(self.count - self.next)
    }

    fn describe(&self) -> String {
        format!(
            "IDX {} ({} images {}x{}x{}, {})",
            self.images_path.display(),
            self.count,
            self.width,
            self.height,
            self.channels,
            if self.labels.is_some() {
                "labelled"
            } else {
                "unlabelled"
            }
        )
    }

    fn classes(&self) -> Option<usize> {
        self.labels
            .as_ref()
            .and_then(|l| l.iter().max())
            .map(|&m| m as usize + 1)
    }
}
