//! The edgessl container: a fixed 32-byte header followed by a postcard payload.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "EDGESSL\0"
//!      8     4  format version (u32 LE)
//!     12     4  payload kind (u32 LE: 1 = checkpoint, 2 = encoder export)
//!     16     8  payload length in bytes (u64 LE)
//!     24     4  CRC32 of the payload (u32 LE)
//!     28     4  CRC32 of bytes 0..28 (u32 LE)
//!     32     …  payload (postcard)
//! ```
//!
//! The header layout is frozen for all format versions; only the payload encoding may change.
//! That lets the header checksum be verified before the version is interpreted, so a damaged
//! version field reads as corruption rather than as "written by a newer edgessl", and lets any
//! build report the kind and length of files from newer builds.

use super::atomic::write_atomic;
use super::error::{CheckpointError, FormatError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// The magic bytes that open every container.
pub const MAGIC: [u8; 8] = *b"EDGESSL\0";
/// The newest format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Size of the fixed header in bytes.
pub const HEADER_LEN: usize = 32;

/// What a container holds; stored in the header so a checkpoint is never loaded as an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadKind {
    /// A training checkpoint (model, optimiser, schedule state).
    Checkpoint,
    /// A trained encoder handed to users.
    EncoderExport,
}

impl PayloadKind {
    /// The code stored in the header.
    pub fn code(self) -> u32 {
        match self {
            Self::Checkpoint => 1,
            Self::EncoderExport => 2,
        }
    }

    /// The kind for a header code, if this build knows it.
    pub fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(Self::Checkpoint),
            2 => Some(Self::EncoderExport),
            _ => None,
        }
    }
}

impl fmt::Display for PayloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Checkpoint => "a checkpoint",
            Self::EncoderExport => "an encoder export",
        })
    }
}

/// The decoded fixed header (after its own checksum has been verified).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    version: u32,
    kind_code: u32,
    payload_len: u64,
    payload_crc: u32,
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&self.version.to_le_bytes());
        out[12..16].copy_from_slice(&self.kind_code.to_le_bytes());
        out[16..24].copy_from_slice(&self.payload_len.to_le_bytes());
        out[24..28].copy_from_slice(&self.payload_crc.to_le_bytes());
        let header_crc = crc32fast::hash(&out[0..28]);
        out[28..32].copy_from_slice(&header_crc.to_le_bytes());
        out
    }

    /// Parse the header at the start of `bytes`, of which `total_len` exist in the file.
    /// Checks magic, size and header checksum only; the version is judged by the caller so
    /// [`inspect`] can still describe files from newer builds.
    fn decode(bytes: &[u8], total_len: u64) -> Result<Self, FormatError> {
        let n = bytes.len().min(MAGIC.len());
        if bytes[..n] != MAGIC[..n] {
            return Err(FormatError::BadMagic);
        }
        if bytes.len() < HEADER_LEN {
            return Err(FormatError::Truncated {
                expected: HEADER_LEN as u64,
                actual: total_len,
            });
        }
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        if crc32fast::hash(&bytes[0..28]) != u32_at(28) {
            return Err(FormatError::HeaderCorrupt);
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&bytes[16..24]);
        Ok(Self {
            version: u32_at(8),
            kind_code: u32_at(12),
            payload_len: u64::from_le_bytes(len),
            payload_crc: u32_at(24),
        })
    }

    fn check_version(&self) -> Result<(), FormatError> {
        match self.version {
            0 => Err(FormatError::UnsupportedVersion { version: 0 }),
            v if v > FORMAT_VERSION => Err(FormatError::FutureVersion { version: v }),
            _ => Ok(()),
        }
    }

    fn check_kind(&self, expected: PayloadKind) -> Result<(), FormatError> {
        match PayloadKind::from_code(self.kind_code) {
            None => Err(FormatError::UnknownKind {
                code: self.kind_code,
            }),
            Some(found) if found != expected => Err(FormatError::WrongKind { expected, found }),
            Some(_) => Ok(()),
        }
    }

    /// Compare the announced payload length with the bytes present after the header.
    fn check_len(&self, payload_present: u64) -> Result<(), FormatError> {
        let expected = (HEADER_LEN as u64).saturating_add(self.payload_len);
        let actual = HEADER_LEN as u64 + payload_present;
        if payload_present < self.payload_len {
            Err(FormatError::Truncated { expected, actual })
        } else if payload_present > self.payload_len {
            Err(FormatError::TrailingBytes { expected, actual })
        } else {
            Ok(())
        }
    }
}

/// Wrap already-encoded payload bytes in a header. Used by [`encode_bytes`]; public for tools
/// and tests that need a correctly checksummed file around arbitrary payload bytes.
pub fn frame_payload(kind: PayloadKind, payload: &[u8]) -> Vec<u8> {
    let header = Header {
        version: FORMAT_VERSION,
        kind_code: kind.code(),
        payload_len: payload.len() as u64,
        payload_crc: crc32fast::hash(payload),
    };
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(payload);
    out
}

/// Encode `value` as a complete container in memory.
pub fn encode_bytes<T: Serialize + ?Sized>(
    kind: PayloadKind,
    value: &T,
) -> Result<Vec<u8>, postcard::Error> {
    Ok(frame_payload(kind, &postcard::to_allocvec(value)?))
}

/// Decode a complete container from memory. [`read_file`] uses exactly this, so fuzzing it
/// covers the file path too.
///
/// Never panics and never allocates more than `bytes.len()` on behalf of length fields: the
/// payload length is checked against the bytes present before anything else, and postcard
/// bounds every collection by the remaining input.
pub fn decode_bytes<T: DeserializeOwned>(
    bytes: &[u8],
    expected: PayloadKind,
) -> Result<T, FormatError> {
    let header = Header::decode(bytes, bytes.len() as u64)?;
    header.check_version()?;
    header.check_kind(expected)?;
    let payload = &bytes[HEADER_LEN..];
    header.check_len(payload.len() as u64)?;
    let computed = crc32fast::hash(payload);
    if computed != header.payload_crc {
        return Err(FormatError::ChecksumMismatch {
            stored: header.payload_crc,
            computed,
        });
    }
    let (value, rest) = postcard::take_from_bytes(payload).map_err(FormatError::Decode)?;
    if !rest.is_empty() {
        return Err(FormatError::PayloadTrailing { unused: rest.len() });
    }
    Ok(value)
}

/// Read and verify a container file and decode its payload as `T`.
pub fn read_file<T: DeserializeOwned>(
    path: impl AsRef<Path>,
    expected: PayloadKind,
) -> Result<T, CheckpointError> {
    let path = path.as_ref();
    // Reading the whole file bounds the allocation by the real file size, not by a header field.
    let bytes = std::fs::read(path).map_err(|e| CheckpointError::io(path, e))?;
    decode_bytes(&bytes, expected).map_err(|source| CheckpointError::Format {
        path: path.to_owned(),
        source,
    })
}

/// Write `value` as a container, atomically: either the complete new file is under `path`
/// (durably, on return) or the previous file is left untouched.
///
/// The payload is streamed to disk while its checksum is computed, and the header is written
/// last, so a large model is never held twice in memory.
pub fn write_file<T: Serialize + ?Sized>(
    path: impl AsRef<Path>,
    kind: PayloadKind,
    value: &T,
) -> Result<(), CheckpointError> {
    let path = path.as_ref();
    let mut encode_error = None;
    let result = write_atomic(path, |file| {
        let mut out = BufWriter::with_capacity(1 << 16, file);
        out.write_all(&[0u8; HEADER_LEN])?;
        let mut sink = ChecksumWriter::new(&mut out);
        if let Err(e) = postcard::to_io(value, &mut sink) {
            // postcard hides the I/O error behind its own; prefer the real cause (disk full).
            return Err(sink.io_error.take().unwrap_or_else(|| {
                encode_error = Some(e);
                io::Error::other("payload encoding failed")
            }));
        }
        let header = Header {
            version: FORMAT_VERSION,
            kind_code: kind.code(),
            payload_len: sink.len,
            payload_crc: sink.hasher.finalize(),
        };
        out.seek(SeekFrom::Start(0))?;
        out.write_all(&header.encode())?;
        out.flush()
    });
    match (result, encode_error) {
        (Ok(()), _) => Ok(()),
        (Err(_), Some(source)) => Err(CheckpointError::Encode {
            path: path.to_owned(),
            source,
        }),
        (Err(e), None) => Err(CheckpointError::io(path, e)),
    }
}

/// Passes bytes through while counting them and computing their CRC32.
struct ChecksumWriter<W> {
    inner: W,
    hasher: crc32fast::Hasher,
    len: u64,
    io_error: Option<io::Error>,
}

impl<W: Write> ChecksumWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: crc32fast::Hasher::new(),
            len: 0,
            io_error: None,
        }
    }
}

impl<W: Write> Write for ChecksumWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.inner.write(buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.len += n as u64;
                Ok(n)
            }
            Err(e) => {
                let kind = e.kind();
                self.io_error = Some(e);
                Err(kind.into())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What the header of a container says, and whether the payload verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderInfo {
    /// Format version that wrote the file.
    pub version: u32,
    /// Payload kind, `None` for a code this build does not know.
    pub kind: Option<PayloadKind>,
    /// Raw payload kind code.
    pub kind_code: u32,
    /// Payload length announced by the header.
    pub payload_len: u64,
    /// Total size of the file in bytes.
    pub file_len: u64,
    /// CRC32 announced by the header.
    pub stored_crc: u32,
    /// True when the payload is exactly as long as announced and its CRC32 matches.
    pub checksum_ok: bool,
}

impl HeaderInfo {
    /// True when this build can read the file's format version.
    pub fn version_supported(&self) -> bool {
        (1..=FORMAT_VERSION).contains(&self.version)
    }

    /// True when the file is intact and readable by this build (the payload type is not
    /// checked: that needs the caller's type, see [`read_file`]).
    pub fn verifies(&self) -> bool {
        self.checksum_ok && self.version_supported() && self.kind.is_some()
    }
}

/// Read a container's header and verify its payload checksum without decoding the payload.
/// Streams the file, so it is cheap on memory for any size. Files from newer format versions
/// are described (the header layout is frozen) rather than refused.
pub fn inspect(path: impl AsRef<Path>) -> Result<HeaderInfo, CheckpointError> {
    let path = path.as_ref();
    let io_err = |e| CheckpointError::io(path, e);
    let mut file = File::open(path).map_err(io_err)?;
    let file_len = file.metadata().map_err(io_err)?.len();
    let mut head = Vec::with_capacity(HEADER_LEN);
    (&mut file)
        .take(HEADER_LEN as u64)
        .read_to_end(&mut head)
        .map_err(io_err)?;
    let header = Header::decode(&head, file_len).map_err(|source| CheckpointError::Format {
        path: path.to_owned(),
        source,
    })?;
    let mut hasher = crc32fast::Hasher::new();
    let mut present = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(io_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        present += n as u64;
    }
    Ok(HeaderInfo {
        version: header.version,
        kind: PayloadKind::from_code(header.kind_code),
        kind_code: header.kind_code,
        payload_len: header.payload_len,
        file_len,
        stored_crc: header.payload_crc,
        checksum_ok: present == header.payload_len && hasher.finalize() == header.payload_crc,
    })
}
