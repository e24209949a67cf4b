//! Handing users a clean encoder: a burn-independent description of trained weights
//! ([`NamedTensor`], [`ModelCard`], [`EncoderExport`]) and writers for the formats people load
//! elsewhere (edgessl container, safetensors, `.npy`/CSV embeddings), plus [`describe_file`]
//! for `edgessl inspect`.
//!
//! The trainer converts its burn modules into `NamedTensor`s (with PyTorch-style names); nothing
//! in here depends on burn.

pub mod card;
pub mod describe;
pub mod embeddings;
pub mod encoder;
pub mod error;
pub mod safetensors;
pub mod tensor;

pub use card::{ModelCard, TrunkInfo};
pub use describe::{FileDescription, describe, describe_file};
pub use embeddings::{npy_bytes, parse_npy_f32, read_npy_f32, write_csv, write_npy};
pub use encoder::{EncoderExport, card_path_for, read_card, write_card};
pub use error::{ExportError, TensorError};
pub use safetensors::{SafetensorsFile, read_safetensors, safetensors_bytes, write_safetensors};
pub use tensor::{NamedTensor, Precision, TensorData};
