//! safetensors export: read back by the safetensors crate and, when available, by Python.

use edgessl::export::{
    EncoderExport, ModelCard, NamedTensor, Precision, TensorData, read_safetensors,
    write_safetensors,
};
use safetensors::tensor::{Dtype, SafeTensors};
use std::path::Path;
use std::process::Command;

fn export() -> EncoderExport {
    let card = ModelCard {
        method: "directpred".into(),
        steps: 1000,
        data: "synthetic".into(),
        input_height: 32,
        input_width: 32,
        channels: 3,
        mean: vec![0.5, 0.5, 0.5],
        std: vec![0.25, 0.25, 0.25],
        output_dim: 8,
        created_at_unix: 1_700_000_000,
        ..ModelCard::default()
    };
    let seq = |n: usize, scale: f32| {
        (0..n)
            .map(|i| (i as f32 - n as f32 / 2.0) * scale)
            .collect::<Vec<_>>()
    };
    EncoderExport::new(
        card,
        vec![
            NamedTensor::f32("layer1.0.conv1.weight", vec![4, 3, 3, 3], seq(108, 0.01)).unwrap(),
            NamedTensor::f32("bn1.running_mean", vec![4], vec![0.1, -0.2, 0.3, 0.0]).unwrap(),
            NamedTensor::f32("bn1.num_batches_tracked_as_f32", vec![], vec![42.0]).unwrap(),
            NamedTensor::f32("fc.weight", vec![8, 4], seq(32, 0.125)).unwrap(),
        ],
    )
    .unwrap()
}

fn check_with_crate(path: &Path, export: &EncoderExport) {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort();
    let mut expected: Vec<_> = export.tensors.iter().map(|t| t.name.as_str()).collect();
    expected.sort();
    assert_eq!(names, expected);
    for t in &export.tensors {
        let view = st.tensor(&t.name).unwrap();
        assert_eq!(view.shape(), t.shape.as_slice(), "{}", t.name);
        let dtype = match t.precision() {
            Precision::F32 => Dtype::F32,
            Precision::F16 => Dtype::F16,
        };
        assert_eq!(view.dtype(), dtype, "{}", t.name);
        assert_eq!(view.data(), t.data.to_le_bytes().as_slice(), "{}", t.name);
    }
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    assert_eq!(meta["method"], "directpred");
    assert_eq!(meta["steps"], "1000");
    assert_eq!(meta["input_height"], "32");
    assert_eq!(meta["precision"], export.card.precision.as_str());
    assert_eq!(meta["format"], "pt");
}

#[test]
fn f32_and_f16_read_back_by_the_safetensors_crate() {
    let dir = tempfile::tempdir().unwrap();
    for precision in [Precision::F32, Precision::F16] {
        let export = export().to_precision(precision).unwrap();
        let path = dir
            .path()
            .join(format!("enc-{}.safetensors", precision.as_str()));
        write_safetensors(&path, &export).unwrap();
        check_with_crate(&path, &export);
        assert!(
            dir.path()
                .join(format!("enc-{}.safetensors.card.toml", precision.as_str()))
                .exists()
        );

        let back = read_safetensors(&path).unwrap();
        assert_eq!(back.card.as_ref(), Some(&export.card));
        let mut got = back.tensors.clone();
        got.sort_by(|a, b| a.name.cmp(&b.name));
        let mut want = export.tensors.clone();
        want.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(got, want);
    }
}

#[test]
fn corrupt_safetensors_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("enc.safetensors");
    write_safetensors(&path, &export()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    let err = read_safetensors(&path).unwrap_err();
    assert!(err.to_string().contains("enc.safetensors"), "{err}");
}

fn python_has(modules: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("note: skipping the Python check: `python3 -c 'import {modules}'` failed");
    }
    ok
}

const PY_CHECK: &str = r#"
import json, sys
import numpy as np
from safetensors import safe_open
out = {}
with safe_open(sys.argv[1], framework="np") as f:
    meta = f.metadata()
    for name in f.keys():
        t = f.get_tensor(name)
        out[name] = {"shape": list(t.shape), "dtype": str(t.dtype),
                     "hex": t.tobytes().hex()}
print(json.dumps({"meta": meta, "tensors": out}))
"#;

#[test]
fn python_safetensors_reads_the_file() {
    if !python_has("safetensors, numpy") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for precision in [Precision::F32, Precision::F16] {
        let export = export().to_precision(precision).unwrap();
        let path = dir.path().join("enc.safetensors");
        write_safetensors(&path, &export).unwrap();
        let out = Command::new("python3")
            .args(["-c", PY_CHECK])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["meta"]["method"], "directpred");
        let card: ModelCard =
            serde_json::from_str(v["meta"]["edgessl.card"].as_str().unwrap()).unwrap();
        assert_eq!(card, export.card);
        let tensors = v["tensors"].as_object().unwrap();
        assert_eq!(tensors.len(), export.tensors.len());
        for t in &export.tensors {
            let py = &tensors[&t.name];
            let shape: Vec<usize> = serde_json::from_value(py["shape"].clone()).unwrap();
            assert_eq!(shape, t.shape, "{}", t.name);
            let dtype = match t.data {
                TensorData::F32(_) => "float32",
                TensorData::F16(_) => "float16",
            };
            assert_eq!(py["dtype"], dtype, "{}", t.name);
            // Bit patterns: JSON float text would add a second rounding step.
            let ours: String = t
                .data
                .to_le_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(py["hex"], ours, "{}", t.name);
        }
    }
}
