//! Property test: the container decoder never panics, whatever the bytes. Runs ≥100k random
//! and mutated inputs through `decode_bytes` (the function `read_file` uses), including
//! garbage payloads re-framed with a valid checksum so that postcard itself sees them.
//!
//! `EDGESSL_FUZZ_ITERS=<n>` runs longer locally.

use edgessl::checkpoint::container::frame_payload;
use edgessl::checkpoint::{PayloadKind, decode_bytes, encode_bytes};
use edgessl::export::{EncoderExport, ModelCard, NamedTensor, TensorData};
use half::f16;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Instant;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Shape {
    Dense { dims: Vec<usize> },
    Scalar,
    Named(String, Option<Box<Shape>>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Ckpt {
    step: u64,
    name: String,
    params: Vec<(String, Shape, Vec<f32>)>,
    extra: BTreeMap<u32, Vec<u8>>,
    flag: bool,
    ratio: f64,
}

fn seeds() -> Vec<(PayloadKind, Vec<u8>)> {
    let ckpt = Ckpt {
        step: 77,
        name: "byol".into(),
        params: vec![
            (
                "w".into(),
                Shape::Dense { dims: vec![2, 3] },
                vec![0.5, -1.0, 2.0, 3.5, 1e-3, 7.0],
            ),
            (
                "b".into(),
                Shape::Named("bias".into(), Some(Box::new(Shape::Scalar))),
                vec![0.1],
            ),
        ],
        extra: [(1, vec![1, 2, 3]), (9, vec![])].into(),
        flag: true,
        ratio: 0.25,
    };
    let card = ModelCard {
        method: "simsiam".into(),
        mean: vec![0.5; 3],
        std: vec![0.25; 3],
        ..ModelCard::default()
    };
    let export = EncoderExport::new(
        card.clone(),
        vec![
            NamedTensor::f32(
                "conv1.weight",
                vec![2, 1, 2, 2],
                (0..8).map(|i| i as f32).collect(),
            )
            .unwrap(),
            NamedTensor::f32("bn1.running_mean", vec![2], vec![0.0, 1.0]).unwrap(),
        ],
    )
    .unwrap();
    let export16 = EncoderExport::new(
        card,
        vec![NamedTensor::new("fc.weight", vec![3], TensorData::F16(vec![f16::ONE; 3])).unwrap()],
    )
    .unwrap();
    vec![
        (
            PayloadKind::Checkpoint,
            encode_bytes(PayloadKind::Checkpoint, &ckpt).unwrap(),
        ),
        (
            PayloadKind::EncoderExport,
            encode_bytes(PayloadKind::EncoderExport, &export).unwrap(),
        ),
        (
            PayloadKind::EncoderExport,
            encode_bytes(PayloadKind::EncoderExport, &export16).unwrap(),
        ),
    ]
}

/// Decode as every type of interest; only panics matter, results are ignored.
fn decode_all(bytes: &[u8]) -> usize {
    let mut ok = 0;
    ok += decode_bytes::<Ckpt>(bytes, PayloadKind::Checkpoint).is_ok() as usize;
    if let Ok(export) = decode_bytes::<EncoderExport>(bytes, PayloadKind::EncoderExport) {
        // Decoded exports from untrusted bytes must validate without panicking too.
        let _ = export.validate();
        ok += 1;
    }
    ok
}

fn mutate(rng: &mut StdRng, input: &mut Vec<u8>) {
    for _ in 0..rng.random_range(1..=4) {
        match rng.random_range(0..6) {
            0 if !input.is_empty() => {
                let i = rng.random_range(0..input.len());
                input[i] ^= 1 << rng.random_range(0..8);
            }
            1 if !input.is_empty() => {
                let i = rng.random_range(0..input.len());
                input[i] = rng.random();
            }
            2 => input.truncate(rng.random_range(0..=input.len())),
            3 => {
                let i = rng.random_range(0..=input.len());
                // Interesting values for varint lengths and sizes.
                let v: &[u8] = match rng.random_range(0..4) {
                    0 => &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                    1 => &[0x80, 0x80, 0x80, 0x80, 0x08],
                    2 => &[0x00],
                    _ => &[0x7f],
                };
                input.splice(i..i, v.iter().copied());
            }
            4 if !input.is_empty() => {
                let a = rng.random_range(0..input.len());
                let b = rng.random_range(a..=input.len().min(a + 16));
                let chunk = input[a..b].to_vec();
                let at = rng.random_range(0..=input.len());
                input.splice(at..at, chunk);
            }
            _ => {
                let i = rng.random_range(0..=input.len());
                let j = rng.random_range(i..=input.len());
                input.drain(i..j);
            }
        }
    }
}

#[test]
fn decoder_never_panics_on_random_and_mutated_input() {
    let iters: usize = std::env::var("EDGESSL_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400_000);
    let seeds = seeds();
    let payloads: Vec<_> = seeds.iter().map(|(k, b)| (*k, b[32..].to_vec())).collect();
    let mut rng = StdRng::seed_from_u64(0x5eed_ed9e);
    let start = Instant::now();
    let (mut decoded, mut reframed_ok) = (0usize, 0usize);
    for i in 0..iters {
        let input = match i % 4 {
            // Pure noise, sometimes behind a valid magic so the header checks run.
            0 => {
                let mut v = vec![0u8; rng.random_range(0..96)];
                rng.fill_bytes(&mut v);
                if rng.random_bool(0.5) && v.len() >= 8 {
                    v[..8].copy_from_slice(b"EDGESSL\0");
                }
                v
            }
            // A valid file, mutated: must be caught by the checks before postcard.
            1 => {
                let mut v = seeds[rng.random_range(0..seeds.len())].1.clone();
                mutate(&mut rng, &mut v);
                v
            }
            // A mutated payload with a correct header and checksum: postcard sees garbage.
            _ => {
                let (kind, payload) = &payloads[rng.random_range(0..payloads.len())];
                let mut p = payload.clone();
                mutate(&mut rng, &mut p);
                frame_payload(*kind, &p)
            }
        };
        let n = decode_all(&input);
        decoded += n;
        if i % 4 >= 2 {
            reframed_ok += n;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "fuzz: {iters} inputs in {secs:.2} s ({:.0} inputs/s); {decoded} decoded, {reframed_ok} of them re-framed mutants",
        iters as f64 / secs
    );
    assert!(iters >= 100_000 || std::env::var("EDGESSL_FUZZ_ITERS").is_ok());
}

#[test]
fn huge_length_prefixes_do_not_allocate_or_panic() {
    // A postcard Vec length of u64::MAX-ish with nothing behind it, framed validly.
    let mut payload = vec![0x01]; // step varint
    payload.extend_from_slice(&[0xff; 9]);
    payload.push(0x01);
    assert!(
        decode_bytes::<Ckpt>(
            &frame_payload(PayloadKind::Checkpoint, &payload),
            PayloadKind::Checkpoint
        )
        .is_err()
    );
    // A header announcing an exabyte payload on a 40-byte file.
    let mut bytes = encode_bytes(PayloadKind::Checkpoint, &7u8).unwrap();
    bytes[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    let hcrc = crc32fast::hash(&bytes[..28]);
    bytes[28..32].copy_from_slice(&hcrc.to_le_bytes());
    assert!(decode_bytes::<u8>(&bytes, PayloadKind::Checkpoint).is_err());
    // An export whose shape product overflows usize must fail validation, not panic.
    let t = NamedTensor {
        name: "x".into(),
        shape: vec![usize::MAX, 3],
        data: TensorData::F32(vec![1.0]),
    };
    assert!(t.validate().is_err());
}

#[test]
fn npy_reader_never_panics_on_mutated_input() {
    let seed = edgessl::export::npy_bytes(3, 4, &[1.5; 12]);
    let mut rng = StdRng::seed_from_u64(0x00e9_7000);
    for _ in 0..100_000 {
        let mut input = seed.clone();
        // Bias mutations towards the header, where the parsing happens.
        if rng.random_bool(0.7) {
            input.truncate(rng.random_range(0..=80));
            mutate(&mut rng, &mut input);
            input.extend_from_slice(&seed[80.min(seed.len())..]);
        } else {
            mutate(&mut rng, &mut input);
        }
        let _ = edgessl::export::parse_npy_f32(&input);
    }
}
