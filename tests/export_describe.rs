//! `describe_file`: what `edgessl inspect` prints for each kind of file.

use edgessl::checkpoint::CheckpointStore;
use edgessl::export::{
    EncoderExport, ModelCard, NamedTensor, Precision, describe, describe_file, write_safetensors,
};

fn export() -> EncoderExport {
    let card = ModelCard {
        method: "simsiam".into(),
        output_dim: 4,
        ..ModelCard::default()
    };
    EncoderExport::new(
        card,
        vec![
            NamedTensor::f32("layer1.0.conv1.weight", vec![2, 1, 2, 2], vec![0.5; 8]).unwrap(),
            NamedTensor::f32("bn1.running_var", vec![2], vec![1.0; 2]).unwrap(),
        ],
    )
    .unwrap()
}

#[test]
fn describes_an_export_with_tensors_and_card() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("enc.edgessl");
    export()
        .to_precision(Precision::F16)
        .unwrap()
        .save(&path)
        .unwrap();
    let text = describe_file(&path).unwrap();
    println!("{text}");
    assert!(text.contains("edgessl encoder export"));
    assert!(text.contains("verifies: yes"));
    assert!(text.contains("layer1.0.conv1.weight") && text.contains("[2, 1, 2, 2]"));
    assert!(text.contains("F16"));
    assert!(text.contains("method = \"simsiam\""));

    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let d = describe(&path).unwrap();
    assert!(!d.verifies);
    assert!(
        d.text.contains("verifies: no (checksum mismatch"),
        "{}",
        d.text
    );
}

#[test]
fn describes_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::open(dir.path(), 2).unwrap();
    let path = store.save(7, &vec![1u32, 2, 3]).unwrap();
    let d = describe(&path).unwrap();
    assert!(d.verifies);
    assert!(
        d.text.contains("edgessl checkpoint") && d.text.contains("verifies: yes"),
        "{}",
        d.text
    );
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 2]).unwrap();
    let d = describe(&path).unwrap();
    assert!(!d.verifies);
    assert!(d.text.contains("verifies: no (file length"), "{}", d.text);
    // Header damage: recognised by its magic, described as not verifying.
    let mut bytes = bytes.clone();
    bytes[10] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let d = describe(&path).unwrap();
    assert!(!d.verifies);
    assert!(d.text.contains("ckpt-0000000007.edgessl"), "{}", d.text);
    assert!(
        d.text.contains("verifies: no (corrupt header"),
        "{}",
        d.text
    );
}

#[test]
fn describes_safetensors_and_refuses_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("enc.safetensors");
    write_safetensors(&path, &export()).unwrap();
    let text = describe_file(&path).unwrap();
    assert!(
        text.contains("safetensors") && text.contains("bn1.running_var"),
        "{text}"
    );
    assert!(
        text.contains("F32") && text.contains("method = simsiam"),
        "{text}"
    );
    assert!(
        !text.contains("\"channels\""),
        "card JSON summarised, not dumped: {text}"
    );
    assert!(describe(&path).unwrap().verifies);

    let other = dir.path().join("notes.txt");
    std::fs::write(&other, "hello").unwrap();
    let err = describe_file(&other).unwrap_err().to_string();
    assert!(err.contains("notes.txt"), "{err}");
    let err = describe_file(dir.path().join("missing.bin"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.bin"), "{err}");
}
