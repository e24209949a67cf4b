//! Crash-safe persistence for long on-device runs.
//!
//! A device may lose power at any instant, so this layer guarantees three things:
//! a file under its final name is always complete ([`atomic`]), every byte of it is covered by a
//! checksum so corruption is detected rather than trained on ([`container`]), and a run resumes
//! from the newest checkpoint that verifies, never losing more than the steps since it
//! ([`store`]). Nothing here knows about burn: payloads are any `serde` type, encoded with
//! postcard.

pub mod atomic;
pub mod container;
pub mod error;
pub mod store;

pub use container::{
    FORMAT_VERSION, HeaderInfo, PayloadKind, decode_bytes, encode_bytes, inspect, read_file,
    write_file,
};
pub use error::{CheckpointError, FormatError};
pub use store::{CheckpointEntry, CheckpointStore, Loaded, Recovery, SkippedCheckpoint};
