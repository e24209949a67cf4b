//! Errors of the container format and of the files that hold it.

use super::container::{FORMAT_VERSION, PayloadKind};
use std::path::PathBuf;
use thiserror::Error;

/// Why a byte buffer is not a valid edgessl container. Carries no path: [`CheckpointError`] adds
/// the file name, so in-memory decoding (fuzzing, tools) reports the same reasons.
#[derive(Debug, Error)]
pub enum FormatError {
    /// The first bytes are not `EDGESSL\0`: not an edgessl file at all.
    #[error("not an edgessl file (bad magic bytes)")]
    BadMagic,
    /// Fewer bytes than the header promises (an interrupted copy, a full disk).
    #[error("truncated: expected {expected} bytes, found {actual}")]
    Truncated {
        /// Bytes the header (or the fixed header size) requires.
        expected: u64,
        /// Bytes actually present.
        actual: u64,
    },
    /// More bytes than the header announces: the file was appended to or the length field is
    /// damaged.
    #[error("corrupt: {actual} bytes but the header announces {expected}")]
    TrailingBytes {
        /// Bytes the header announces.
        expected: u64,
        /// Bytes actually present.
        actual: u64,
    },
    /// The header's own checksum fails, so none of its fields can be trusted.
    #[error("corrupt header (header checksum mismatch)")]
    HeaderCorrupt,
    /// Format version 0 never existed; the header checksum passed, so this is a foreign writer.
    #[error("unsupported format version v{version}")]
    UnsupportedVersion {
        /// The version found.
        version: u32,
    },
    /// Written by a newer edgessl whose payload layout this build cannot know.
    #[error(
        "written by a newer edgessl: format v{version}, this build reads up to v{max}",
        max = FORMAT_VERSION
    )]
    FutureVersion {
        /// The version found.
        version: u32,
    },
    /// A payload kind code this build does not know.
    #[error("unknown payload kind code {code}")]
    UnknownKind {
        /// The raw code found.
        code: u32,
    },
    /// A valid file of the other kind (an export where a checkpoint was expected, or vice versa).
    #[error("holds {found}, expected {expected}")]
    WrongKind {
        /// The kind the caller asked for.
        expected: PayloadKind,
        /// The kind the file holds.
        found: PayloadKind,
    },
    /// The payload's CRC32 does not match: bit rot, a torn write, or tampering.
    #[error(
        "checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): file is corrupt"
    )]
    ChecksumMismatch {
        /// CRC32 stored in the header.
        stored: u32,
        /// CRC32 of the bytes present.
        computed: u32,
    },
    /// The payload verifies but does not decode as the requested type (a different model
    /// configuration or an incompatible build wrote it).
    #[error("payload does not decode as the expected type: {0}")]
    Decode(#[source] postcard::Error),
    /// The payload decoded but left bytes unread, so it was not written for this type.
    #[error("payload does not decode as the expected type: {unused} bytes left over")]
    PayloadTrailing {
        /// Bytes left after decoding.
        unused: usize,
    },
}

/// An error reading or writing a container file; every variant names the file.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// The operating system refused (missing file, permissions, full disk, ...).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file exists but is not a valid container of the expected kind and type.
    #[error("{}: {source}", path.display())]
    Format {
        /// The file involved.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: FormatError,
    },
    /// The value could not be serialised; nothing was written under the final name.
    #[error("{}: cannot encode payload: {source}", path.display())]
    Encode {
        /// The file that was being written.
        path: PathBuf,
        /// The serialiser's error.
        #[source]
        source: postcard::Error,
    },
}

impl CheckpointError {
    /// The file this error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            Self::Io { path, .. } | Self::Format { path, .. } | Self::Encode { path, .. } => path,
        }
    }

    /// The format problem, when the file was readable but invalid.
    pub fn format_error(&self) -> Option<&FormatError> {
        match self {
            Self::Format { source, .. } => Some(source),
            _ => None,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
