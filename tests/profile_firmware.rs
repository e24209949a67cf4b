//! Device profiles: every shipped profile loads, applies and validates; bad profiles are
//! clear errors that name the file.

use edgessl::backend::BackendKind;
use edgessl::config::TrainConfig;
use edgessl::model::TrunkKind;
use edgessl::profile::{DeviceProfile, ExportPrecision, FrameSourceSpec, ProfileError};
use edgessl::ssl::PredictorKind;
use std::path::{Path, PathBuf};

const SHIPPED: [&str; 6] = [
    "apple-m1",
    "apple-m2",
    "generic-cpu",
    "jetson-nano",
    "jetson-orin-nano",
    "raspberry-pi-5",
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-config")
}

#[test]
fn every_shipped_profile_loads_applies_and_validates() {
    let mut found: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(found, SHIPPED);
    for name in SHIPPED {
        let p = DeviceProfile::load_file(&dir().join(format!("{name}.toml"))).unwrap();
        assert_eq!(p.name, name);
        let mut c = TrainConfig::default();
        p.apply(&mut c).unwrap();
        c.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(p.meta.memory_budget_mib > 0 && !p.meta.description.is_empty());
        assert!(p.meta.checkpoint_every_steps.is_some() || p.meta.checkpoint_every_secs.is_some());
        // GPU profiles say which cargo feature their backend needs.
        match c.train.backend {
            BackendKind::CandleCuda => assert_eq!(p.meta.features, ["candle-cuda"], "{name}"),
            BackendKind::CandleMetal => assert_eq!(p.meta.features, ["candle-metal"], "{name}"),
            _ => assert!(p.meta.features.is_empty(), "{name}"),
        }
    }
}

#[test]
fn a_bare_name_is_found_in_firmware_config() {
    // Integration tests run in the package root, so ./firmware-config is searched first.
    let p = DeviceProfile::load("generic-cpu").unwrap();
    assert!(
        p.path.ends_with("firmware-config/generic-cpu.toml"),
        "{}",
        p.path.display()
    );
}

#[test]
fn generic_cpu_is_the_reference_recipe() {
    let p = DeviceProfile::load_file(&dir().join("generic-cpu.toml")).unwrap();
    let c = p.train_config().unwrap();
    assert_eq!(c.model.trunk, TrunkKind::Compact);
    assert_eq!(
        (c.model.image_size, c.model.in_channels, c.model.width),
        (28, 1, 32)
    );
    assert_eq!(c.method.predictor, PredictorKind::Directpred);
    assert_eq!(
        (
            c.method.momentum,
            c.optim.lr,
            c.optim.momentum,
            c.optim.weight_decay
        ),
        (0.99, 0.05, 0.9, 4e-4)
    );
    assert_eq!(
        (c.train.batch, c.train.threads, c.train.backend),
        (128, 0, BackendKind::Flex)
    );
    assert_eq!(p.meta.export_precision, ExportPrecision::F32);
    assert_eq!(
        p.meta.frame_source,
        FrameSourceSpec::Data("fashion-mnist".into())
    );
}

#[test]
fn apply_overrides_only_the_keys_the_profile_gives() {
    let p = DeviceProfile::load_file(&dir().join("raspberry-pi-5.toml")).unwrap();
    let mut c = TrainConfig::default();
    c.model.dim = 64; // not in the profile: kept
    c.train.steps = 7; // not in the profile: kept
    p.apply(&mut c).unwrap();
    assert_eq!((c.model.dim, c.train.steps), (64, 7));
    assert_eq!(
        (
            c.model.image_size,
            c.model.in_channels,
            c.train.threads,
            c.train.batch
        ),
        (32, 3, 4, 64)
    );
    assert_eq!(
        p.meta.frame_source,
        FrameSourceSpec::Stream {
            path: "/tmp/camera.fifo".into(),
            width: 320,
            height: 240
        }
    );
}

const GOOD_META: &str = "[profile]\ndescription = \"t\"\nmemory_budget_mib = 100\ncheckpoint_every_steps = 10\nexport_precision = \"f32\"\nframe_source = \"synthetic\"\n";

fn parse(text: &str) -> Result<DeviceProfile, ProfileError> {
    DeviceProfile::from_toml(text, Path::new("firmware-config/bad-device.toml"))
}

fn assert_error(text: &str, expected: &[&str]) {
    let msg = parse(text).unwrap_err().to_string();
    assert!(
        msg.contains("bad-device.toml"),
        "error does not name the file: {msg}"
    );
    for e in expected {
        assert!(msg.contains(e), "`{msg}` does not mention `{e}`");
    }
}

#[test]
fn bad_profiles_are_clear_errors_naming_the_file() {
    assert!(parse(GOOD_META).is_ok());
    assert_error(
        &format!("{GOOD_META}[model]\nwdith = 3\n"),
        &["[model]", "wdith"],
    );
    assert_error(
        &format!("{GOOD_META}[train]\nbatch = \"big\"\n"),
        &["[train]", "batch"],
    );
    assert_error(
        &format!("{GOOD_META}[train]\nbatch = 1\n"),
        &["train.batch"],
    );
    assert_error(&format!("{GOOD_META}[data]\nx = 1\n"), &["data"]);
    assert_error(
        &GOOD_META.replace("memory_budget_mib = 100", "memory_budget_mb = 100"),
        &["memory_budget_mb"],
    );
    assert_error(&GOOD_META.replace("\"f32\"", "\"f8\""), &["f8"]);
    assert_error(
        &GOOD_META.replace("\"synthetic\"", "\"camera\""),
        &["frame_source"],
    );
    assert_error(
        &GOOD_META.replace("checkpoint_every_steps = 10\n", ""),
        &["checkpoint_every"],
    );
    assert_error("[model]\nwidth = 8\n", &["[profile]"]);
    assert_error("[profile\n", &[]);
}

#[test]
fn missing_profiles_name_what_was_searched() {
    let err = DeviceProfile::load("no-such-device").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ProfileError::NotFound { .. }));
    assert!(
        msg.contains("no-such-device.toml") && msg.contains("generic-cpu"),
        "{msg}"
    );
    let err = DeviceProfile::load("firmware-config/missing.toml").unwrap_err();
    assert!(matches!(err, ProfileError::Read { .. }));
    assert!(
        err.to_string().contains("firmware-config/missing.toml"),
        "{err}"
    );
}
