//! Container format: round trip, corruption at every byte, truncation at every length, version
//! and kind checks, and atomicity when encoding fails halfway.

use edgessl::checkpoint::container::{HEADER_LEN, MAGIC, frame_payload};
use edgessl::checkpoint::{
    CheckpointError, FORMAT_VERSION, FormatError, PayloadKind, decode_bytes, encode_bytes, inspect,
    read_file, write_file,
};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Phase {
    Warmup { until: u64 },
    Cosine { base_lr: f64, min_lr: f64 },
}

/// Shaped like a real training checkpoint: nested structs, enums, options, maps, float vectors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TrainState {
    step: u64,
    method: String,
    phase: Phase,
    weights: Vec<Vec<f32>>,
    ema_momentum: Option<f64>,
    rng_state: [u64; 4],
    counters: BTreeMap<String, u32>,
}

fn sample_state() -> TrainState {
    TrainState {
        step: 12_345,
        method: "byol".into(),
        phase: Phase::Cosine {
            base_lr: 0.05,
            min_lr: 1e-5,
        },
        weights: vec![
            (0..37).map(|i| (i as f32).sin()).collect(),
            vec![f32::MIN_POSITIVE, -0.0, 1e30, -7.25],
        ],
        ema_momentum: Some(0.996),
        rng_state: [1, u64::MAX, 3, 0xdead_beef],
        counters: [("frames".to_string(), 900), ("skipped".to_string(), 2)].into(),
    }
}

fn write_sample(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("state.edgessl");
    write_file(&path, PayloadKind::Checkpoint, &sample_state()).unwrap();
    path
}

/// A header with arbitrary version/kind and a valid header checksum.
fn forged(version: u32, kind_code: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&kind_code.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let header_crc = crc32fast::hash(&out);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

#[test]
fn round_trip_file_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_sample(dir.path());
    let back: TrainState = read_file(&path, PayloadKind::Checkpoint).unwrap();
    assert_eq!(back, sample_state());

    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..8], b"EDGESSL\0");
    assert_eq!(
        bytes,
        encode_bytes(PayloadKind::Checkpoint, &sample_state()).unwrap()
    );
    let back: TrainState = decode_bytes(&bytes, PayloadKind::Checkpoint).unwrap();
    assert_eq!(back, sample_state());

    let info = inspect(&path).unwrap();
    assert_eq!(info.version, FORMAT_VERSION);
    assert_eq!(info.kind, Some(PayloadKind::Checkpoint));
    assert_eq!(info.file_len, bytes.len() as u64);
    assert_eq!(info.payload_len as usize, bytes.len() - HEADER_LEN);
    assert!(info.checksum_ok && info.verifies());
}

#[test]
fn every_flipped_byte_is_reported_with_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_sample(dir.path());
    let good = std::fs::read(&path).unwrap();
    let bad_path = dir.path().join("flipped.edgessl");
    for pos in 0..good.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut bytes = good.clone();
            bytes[pos] ^= mask;
            std::fs::write(&bad_path, &bytes).unwrap();
            let err = read_file::<TrainState>(&bad_path, PayloadKind::Checkpoint)
                .expect_err(&format!("flip {mask:#x} at byte {pos} went unnoticed"));
            let msg = err.to_string();
            assert!(msg.contains("flipped.edgessl"), "{msg}");
            let expected = match pos {
                0..8 => matches!(err.format_error(), Some(FormatError::BadMagic)),
                8..32 => matches!(err.format_error(), Some(FormatError::HeaderCorrupt)),
                _ => matches!(
                    err.format_error(),
                    Some(FormatError::ChecksumMismatch { .. })
                ),
            };
            assert!(expected, "byte {pos}: unexpected error {msg}");
            // inspect must agree: header damage is an error, payload damage a failed checksum.
            match inspect(&bad_path) {
                Ok(info) => assert!(pos >= HEADER_LEN && !info.checksum_ok),
                Err(_) => assert!(pos < HEADER_LEN),
            }
        }
    }
}

#[test]
fn every_truncation_is_reported() {
    let good = encode_bytes(PayloadKind::Checkpoint, &sample_state()).unwrap();
    for len in 0..good.len() {
        let err = decode_bytes::<TrainState>(&good[..len], PayloadKind::Checkpoint)
            .expect_err(&format!("truncation to {len} bytes went unnoticed"));
        assert!(
            matches!(err, FormatError::Truncated { actual, .. } if actual == len as u64),
            "len {len}: {err}"
        );
    }
    // And through a file, so the message names it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.edgessl");
    std::fs::write(&path, &good[..good.len() - 3]).unwrap();
    let msg = read_file::<TrainState>(&path, PayloadKind::Checkpoint)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("cut.edgessl") && msg.contains("truncated"),
        "{msg}"
    );
}

#[test]
fn trailing_bytes_are_refused() {
    let mut bytes = encode_bytes(PayloadKind::Checkpoint, &sample_state()).unwrap();
    bytes.push(0);
    let err = decode_bytes::<TrainState>(&bytes, PayloadKind::Checkpoint).unwrap_err();
    assert!(matches!(err, FormatError::TrailingBytes { .. }), "{err}");
}

#[test]
fn future_version_is_refused_with_a_clear_message() {
    let payload = postcard::to_allocvec(&sample_state()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.edgessl");
    std::fs::write(&path, forged(3, PayloadKind::Checkpoint.code(), &payload)).unwrap();
    let err = read_file::<TrainState>(&path, PayloadKind::Checkpoint).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("new.edgessl")
            && msg.contains("written by a newer edgessl: format v3, this build reads up to v1"),
        "{msg}"
    );
    // inspect still describes it: the header layout is frozen across versions.
    let info = inspect(&path).unwrap();
    assert_eq!(info.version, 3);
    assert!(info.checksum_ok && !info.version_supported() && !info.verifies());

    let err = decode_bytes::<TrainState>(&forged(0, 1, &payload), PayloadKind::Checkpoint);
    assert!(matches!(
        err,
        Err(FormatError::UnsupportedVersion { version: 0 })
    ));
}

#[test]
fn wrong_and_unknown_kinds_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_sample(dir.path());
    let err = read_file::<TrainState>(&path, PayloadKind::EncoderExport).unwrap_err();
    assert!(
        matches!(
            err.format_error(),
            Some(FormatError::WrongKind {
                expected: PayloadKind::EncoderExport,
                found: PayloadKind::Checkpoint
            })
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("holds a checkpoint, expected an encoder export")
    );

    let payload = postcard::to_allocvec(&sample_state()).unwrap();
    let err = decode_bytes::<TrainState>(&forged(1, 77, &payload), PayloadKind::Checkpoint);
    assert!(matches!(err, Err(FormatError::UnknownKind { code: 77 })));
}

#[test]
fn wrong_payload_type_is_a_decode_error() {
    // Verifies, but was written for another type (e.g. a changed model config).
    let bytes = encode_bytes(PayloadKind::Checkpoint, &sample_state()).unwrap();
    let err = decode_bytes::<Vec<String>>(&bytes, PayloadKind::Checkpoint).unwrap_err();
    assert!(
        matches!(
            err,
            FormatError::Decode(_) | FormatError::PayloadTrailing { .. }
        ),
        "{err}"
    );
    // A shorter type that decodes from a prefix must not be accepted silently.
    let bytes = frame_payload(PayloadKind::Checkpoint, &[5, 1, 2, 3]);
    let err = decode_bytes::<u8>(&bytes, PayloadKind::Checkpoint).unwrap_err();
    assert!(
        matches!(err, FormatError::PayloadTrailing { unused: 3 }),
        "{err}"
    );
}

#[test]
fn not_an_edgessl_file_and_missing_file() {
    let err = decode_bytes::<u8>(b"PK\x03\x04 zip file", PayloadKind::Checkpoint).unwrap_err();
    assert!(matches!(err, FormatError::BadMagic));
    let err = read_file::<u8>("/nonexistent/dir/x.edgessl", PayloadKind::Checkpoint).unwrap_err();
    assert!(matches!(err, CheckpointError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/dir/x.edgessl"));
}

/// Serialises 100 000 of 200 000 announced values, then fails: a serialiser error in the middle of the stream.
struct FailsHalfway;

impl Serialize for FailsHalfway {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let mut seq = s.serialize_seq(Some(200_000))?;
        for i in 0..100_000u32 {
            seq.serialize_element(&(i as f32))?;
        }
        Err(S::Error::custom("simulated failure halfway"))
    }
}

#[test]
fn failed_encoding_leaves_the_old_file_intact_and_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_sample(dir.path());
    let before = std::fs::read(&path).unwrap();
    let err = write_file(&path, PayloadKind::Checkpoint, &FailsHalfway).unwrap_err();
    assert!(matches!(err, CheckpointError::Encode { .. }), "{err}");
    assert!(err.to_string().contains("state.edgessl"));
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["state.edgessl"]);
}

#[test]
fn write_into_missing_folder_fails_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("x.edgessl");
    let err = write_file(&path, PayloadKind::Checkpoint, &1u32).unwrap_err();
    assert!(matches!(err, CheckpointError::Io { .. }));
    assert!(err.to_string().contains("x.edgessl"), "{err}");
    assert!(!path.exists());
}
