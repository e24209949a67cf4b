//! Encoder exports: container round trip, f16 size and accuracy on a realistic ~1.4M-value
//! tensor set, model card TOML, and consistency checks.

use edgessl::checkpoint::{FormatError, PayloadKind, read_file};
use edgessl::export::{
    EncoderExport, ExportError, ModelCard, NamedTensor, Precision, TensorData, TensorError,
    TrunkInfo, card_path_for,
};
use half::f16;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

#[derive(Serialize)]
struct TrunkConfig {
    widths: Vec<usize>,
    blocks_per_stage: usize,
    stem_kernel: usize,
}

fn card() -> ModelCard {
    ModelCard {
        created_at_unix: 1_764_300_000,
        method: "byol".into(),
        steps: 250_000,
        data: "garden camera, 48k frames, 32x32 crops".into(),
        input_height: 32,
        input_width: 32,
        channels: 3,
        mean: vec![0.4914, 0.4822, 0.4465],
        std: vec![0.247, 0.2435, 0.2616],
        output_dim: 256,
        trunk: TrunkInfo::from_config(
            "resnet-mini",
            &TrunkConfig {
                widths: vec![32, 64, 128, 256],
                blocks_per_stage: 1,
                stem_kernel: 3,
            },
        )
        .unwrap(),
        ..ModelCard::default()
    }
}

/// A ResNet-ish trunk with PyTorch names, ~1.4M values, He-scaled weights, BatchNorm buffers.
fn realistic_tensors() -> Vec<NamedTensor> {
    let mut rng = StdRng::seed_from_u64(7);
    let mut tensors = Vec::new();
    let mut conv =
        |name: &str, out: usize, inp: usize, k: usize, tensors: &mut Vec<NamedTensor>| {
            let scale = (2.0 / (inp * k * k) as f32).sqrt();
            let n = out * inp * k * k;
            let w = (0..n)
                .map(|_| (rng.random::<f32>() * 2.0 - 1.0) * scale * 1.7)
                .collect();
            tensors
                .push(NamedTensor::f32(format!("{name}.weight"), vec![out, inp, k, k], w).unwrap());
        };
    let bn = |name: &str, c: usize, tensors: &mut Vec<NamedTensor>| {
        for (suffix, v) in [
            ("weight", 1.0),
            ("bias", 0.01),
            ("running_mean", 0.05),
            ("running_var", 0.9),
        ] {
            let data = (0..c).map(|i| v + i as f32 * 1e-3).collect();
            tensors.push(NamedTensor::f32(format!("{name}.{suffix}"), vec![c], data).unwrap());
        }
    };
    conv("conv1", 32, 3, 3, &mut tensors);
    bn("bn1", 32, &mut tensors);
    let widths = [32, 64, 128, 256];
    let mut inp = 32;
    for (stage, &w) in widths.iter().enumerate() {
        let l = format!("layer{}.0", stage + 1);
        conv(&format!("{l}.conv1"), w, inp, 3, &mut tensors);
        bn(&format!("{l}.bn1"), w, &mut tensors);
        conv(&format!("{l}.conv2"), w, w, 3, &mut tensors);
        bn(&format!("{l}.bn2"), w, &mut tensors);
        if inp != w {
            conv(&format!("{l}.downsample.0"), w, inp, 1, &mut tensors);
            bn(&format!("{l}.downsample.1"), w, &mut tensors);
        }
        inp = w;
    }
    tensors
}

#[test]
fn f32_export_round_trips_bit_exactly_with_card_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("encoder.edgessl");
    let export = EncoderExport::new(card(), realistic_tensors()).unwrap();
    let params = export.param_count();
    assert!((1_200_000..1_600_000).contains(&params), "{params} values");
    assert_eq!(export.card.param_count, params);
    assert_eq!(export.card.tensor_count as usize, export.tensors.len());
    export.save(&path).unwrap();

    let back = EncoderExport::load(&path).unwrap();
    assert_eq!(back, export);

    let card_path = card_path_for(&path);
    assert_eq!(card_path.file_name().unwrap(), "encoder.edgessl.card.toml");
    let text = std::fs::read_to_string(&card_path).unwrap();
    assert!(text.contains("method = \"byol\""), "{text}");
    assert!(text.contains("[trunk]"), "{text}");
    let parsed = ModelCard::from_toml(&text).unwrap();
    assert_eq!(parsed, export.card);
    assert_eq!(
        parsed.trunk.config_table().unwrap()["widths"]
            .as_array()
            .unwrap()
            .len(),
        4
    );

    // An export is not a checkpoint.
    let err = read_file::<EncoderExport>(&path, PayloadKind::Checkpoint).unwrap_err();
    assert!(matches!(
        err.format_error(),
        Some(FormatError::WrongKind { .. })
    ));
}

#[test]
fn f16_export_is_about_half_the_size_and_within_rounding() {
    let dir = tempfile::tempdir().unwrap();
    let export = EncoderExport::new(card(), realistic_tensors()).unwrap();
    let half = export.to_precision(Precision::F16).unwrap();
    assert_eq!(half.card.precision, Precision::F16);
    let (p32, p16) = (
        dir.path().join("e32.edgessl"),
        dir.path().join("e16.edgessl"),
    );
    export.save(&p32).unwrap();
    half.save(&p16).unwrap();
    let (s32, s16) = (
        std::fs::metadata(&p32).unwrap().len(),
        std::fs::metadata(&p16).unwrap().len(),
    );
    let ratio = s16 as f64 / s32 as f64;
    println!("f32 export {s32} B, f16 export {s16} B, ratio {ratio:.4}");
    assert!(ratio <= 0.52, "ratio {ratio}");

    let back = EncoderExport::load(&p16).unwrap();
    assert_eq!(back, half);
    for (a, b) in export.tensors.iter().zip(&back.tensors) {
        assert_eq!((&a.name, &a.shape), (&b.name, &b.shape));
        let (TensorData::F32(x), TensorData::F16(h)) = (&a.data, &b.data) else {
            panic!("dtypes")
        };
        for (&x, &h) in x.iter().zip(h) {
            let y = h.to_f32();
            // Round-to-nearest: error at most half an f16 ulp (relative 2^-11 for normals,
            // absolute 2^-25 in the subnormal range).
            let tol = (x.abs() * 2f32.powi(-11)).max(2f32.powi(-25));
            assert!((y - x).abs() <= tol, "{}: {x} -> {y}", a.name);
        }
    }
    // f16 -> f32 is exact.
    let again = back.to_precision(Precision::F32).unwrap();
    assert_eq!(again.to_precision(Precision::F16).unwrap(), back);
}

#[test]
fn f16_overflow_is_refused_not_turned_into_infinity() {
    let t = NamedTensor::f32("bn1.running_var", vec![3], vec![1.0, 70_000.0, 2.0]).unwrap();
    let err = t.to_precision(Precision::F16).unwrap_err();
    assert_eq!(
        err,
        TensorError::F16Overflow {
            name: "bn1.running_var".into(),
            index: 1,
            value: 70_000.0
        }
    );
    // The largest f16 and infinities themselves convert.
    let t = NamedTensor::f32("x", vec![2], vec![65_504.0, f32::INFINITY]).unwrap();
    let h = t.to_precision(Precision::F16).unwrap();
    assert_eq!(h.data, TensorData::F16(vec![f16::MAX, f16::INFINITY]));
}

#[test]
fn inconsistent_tensor_sets_are_refused() {
    assert!(matches!(
        NamedTensor::f32("w", vec![2, 3], vec![0.0; 5]),
        Err(TensorError::ShapeMismatch {
            expected: 6,
            actual: 5,
            ..
        })
    ));
    let a = NamedTensor::f32("w", vec![1], vec![0.0]).unwrap();
    assert!(matches!(
        EncoderExport::new(card(), vec![a.clone(), a.clone()]),
        Err(TensorError::DuplicateName { .. })
    ));
    let b = NamedTensor::new("b", vec![1], TensorData::F16(vec![f16::ZERO])).unwrap();
    assert!(matches!(
        EncoderExport::new(card(), vec![a.clone(), b]),
        Err(TensorError::MixedPrecision { .. })
    ));
    let mut export = EncoderExport::new(card(), vec![a]).unwrap();
    export.card.param_count = 99;
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        export.save(dir.path().join("x.edgessl")),
        Err(ExportError::Tensor(TensorError::CardMismatch {
            field: "param_count",
            ..
        }))
    ));
    assert!(!dir.path().join("x.edgessl").exists());
}

#[test]
fn inconsistent_export_file_is_refused_naming_it() {
    // Written around the validation (e.g. by a buggy tool): the loader must still catch it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.edgessl");
    let export = EncoderExport {
        card: card(),
        tensors: vec![NamedTensor {
            name: "w".into(),
            shape: vec![4],
            data: TensorData::F32(vec![1.0; 3]),
        }],
    };
    edgessl::checkpoint::write_file(&path, PayloadKind::EncoderExport, &export).unwrap();
    let err = EncoderExport::load(&path).unwrap_err();
    assert!(matches!(err, ExportError::Invalid { .. }));
    assert!(err.to_string().contains("bad.edgessl"), "{err}");
}
