//! Raw video frames from a file, FIFO or stdin: exactly what
//! `ffmpeg -i INPUT -f rawvideo -pix_fmt gray -` (or `rgb24`) writes, frames back to back with
//! no header, so the geometry comes from the command line. Optionally keeps every k-th frame
//! only, since neighbouring video frames are near duplicates.

use super::{DataError, Frame, FrameSource};
use serde::{Deserialize, Serialize};
use std::io::{ErrorKind, Read};
use std::path::Path;

/// Largest frame accepted, so a typo in `--stream-size` cannot request gigabytes.
const MAX_FRAME_BYTES: usize = 1 << 28;

/// Pixel layout of a raw stream (ffmpeg's `-pix_fmt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StreamFormat {
    /// One byte per pixel (ffmpeg `gray`).
    Gray8,
    /// Three bytes per pixel, R G B interleaved (ffmpeg `rgb24`).
    Rgb24,
}

impl StreamFormat {
    /// Bytes per pixel.
    pub fn channels(self) -> usize {
        match self {
            StreamFormat::Gray8 => 1,
            StreamFormat::Rgb24 => 3,
        }
    }

    /// The name used on the command line and by ffmpeg (`gray8` is ffmpeg's `gray`).
    pub fn name(self) -> &'static str {
        match self {
            StreamFormat::Gray8 => "gray8",
            StreamFormat::Rgb24 => "rgb24",
        }
    }
}

/// Frames read sequentially from a raw byte stream.
pub struct RawStreamSource {
    name: String,
    reader: Box<dyn Read + Send>,
    format: StreamFormat,
    width: usize,
    height: usize,
    every: usize,
    /// Frames read from the stream so far, kept or not.
    read: u64,
    delivered: u64,
    done: bool,
}

impl RawStreamSource {
    /// Opens `path` (`-` for stdin). A regular file must hold a whole number of frames;
    /// FIFOs and stdin are checked as they are read.
    pub fn open(
        path: &str,
        format: StreamFormat,
        width: usize,
        height: usize,
        every: usize,
    ) -> Result<Self, DataError> {
        let frame_bytes = check_geometry(format, width, height, every)?;
        if path == "-" {
            let reader = Box::new(std::io::BufReader::with_capacity(1 << 16, std::io::stdin()));
            return Self::from_reader("stdin", reader, format, width, height, every);
        }
        let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
        let meta = file.metadata().map_err(|e| DataError::io(path, e))?;
        if meta.is_file() {
            let len = meta.len();
            if len == 0 || !len.is_multiple_of(frame_bytes as u64) {
                return Err(DataError::format(
                    path,
                    mismatch_message(len, format, width, height),
                ));
            }
        } else if meta.is_dir() {
            return Err(DataError::format(
                path,
                "is a directory (--stream takes a file, FIFO or -)",
            ));
        }
        let reader = Box::new(std::io::BufReader::with_capacity(1 << 16, file));
        Self::from_reader(
            &Path::new(path).display().to_string(),
            reader,
            format,
            width,
            height,
            every,
        )
    }

    /// Reads frames from any byte source (`name` is used in messages).
    pub fn from_reader(
        name: &str,
        reader: Box<dyn Read + Send>,
        format: StreamFormat,
        width: usize,
        height: usize,
        every: usize,
    ) -> Result<Self, DataError> {
        check_geometry(format, width, height, every)?;
        Ok(RawStreamSource {
            name: name.to_string(),
            reader,
            format,
            width,
            height,
            every,
            read: 0,
            delivered: 0,
            done: false,
        })
    }

    fn frame_bytes(&self) -> usize {
        self.width * self.height * self.format.channels()
    }

    /// Fills `buf` with the next frame; `Ok(false)` at the end of the stream.
    fn read_frame(&mut self, buf: &mut [u8]) -> Result<bool, DataError> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(DataError::io(&self.name, e)),
            }
        }
        if filled == buf.len() {
            return Ok(true);
        }
        if filled > 0 {
            if self.read == 0 {
                // Not even one whole frame: the geometry or format is almost certainly wrong.
                return Err(DataError::format(
                    &self.name,
                    format!(
                        "stream ended after {filled} bytes, less than one {}x{} {} frame ({} bytes): \
                         check --stream-size and --stream-format",
                        self.width,
                        self.height,
                        self.format.name(),
                        buf.len()
                    ),
                ));
            }
            tracing::warn!(
                "{}: dropping truncated last frame ({filled} of {} bytes) after {} whole frames",
                self.name,
                buf.len(),
                self.read
            );
        }
        Ok(false)
    }
}

fn check_geometry(
    format: StreamFormat,
    width: usize,
    height: usize,
    every: usize,
) -> Result<usize, DataError> {
    if width == 0 || height == 0 {
        return Err(DataError::Invalid(format!(
            "--stream-size {width}x{height}: both sides must be > 0"
        )));
    }
    if every == 0 {
        return Err(DataError::Invalid("--stream-every must be >= 1".into()));
    }
    let bytes = width
        .checked_mul(height)
        .and_then(|p| p.checked_mul(format.channels()));
    match bytes {
        Some(b) if b <= MAX_FRAME_BYTES => Ok(b),
        _ => Err(DataError::Invalid(format!(
            "--stream-size {width}x{height}: frame too large"
        ))),
    }
}

/// Explains a file length that is not a whole number of frames, suggesting what would fit.
fn mismatch_message(len: u64, format: StreamFormat, width: usize, height: usize) -> String {
    let frame = (width * height * format.channels()) as u64;
    let mut msg = format!(
        "{len} bytes is not a whole number of {width}x{height} {} frames ({frame} bytes each); \
         check --stream-size and --stream-format",
        format.name()
    );
    let other = match format {
        StreamFormat::Gray8 => StreamFormat::Rgb24,
        StreamFormat::Rgb24 => StreamFormat::Gray8,
    };
    let other_frame = (width * height * other.channels()) as u64;
    if len > 0 && len.is_multiple_of(other_frame) {
        msg.push_str(&format!(
            " (it would be {} {} frames)",
            len / other_frame,
            other.name()
        ));
    } else if len > frame {
        msg.push_str(&format!(
            " (if the size is right, the last frame was cut short: {} whole frames + {} bytes; \
             `head -c {}` keeps the whole ones)",
            len / frame,
            len % frame,
            len / frame * frame
        ));
    }
    msg
}

impl FrameSource for RawStreamSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, DataError> {
        if self.done {
            return Ok(None);
        }
        let mut pixels = vec![0u8; self.frame_bytes()];
        loop {
            if !self.read_frame(&mut pixels)? {
                self.done = true;
                return Ok(None);
            }
            let index = self.read;
            self.read += 1;
            if index.is_multiple_of(self.every as u64) {
                self.delivered += 1;
                return Ok(Some(Frame {
                    width: self.width,
                    height: self.height,
                    channels: self.format.channels(),
                    pixels,
                    label: None,
                }));
            }
        }
    }

    fn describe(&self) -> String {
        let every = if self.every > 1 {
            format!(", keeping 1 frame in {}", self.every)
        } else {
            String::new()
        };
        format!(
            "raw {} stream {}x{} from {}{every}",
            self.format.name(),
            self.width,
            self.height,
            self.name
        )
    }
}
