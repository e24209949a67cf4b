//! A device profile's `frame_source` is where `pretrain` learns from when no data flag is
//! typed; a typed `--data`/`--frames`/`--stream` wins, and `--resume` keeps the run's frames.

use edgessl::data::{DataArgs, DataSpec};
use edgessl::profile::FrameSourceSpec;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn edgessl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edgessl"))
}

/// A tiny gray profile whose default frames are a raw 16x12 stream in `dir`.
fn camera_profile(dir: &Path) -> (PathBuf, PathBuf) {
    let stream = dir.join("camera.raw");
    // 40 frames of a moving gradient, as a camera pipe would hand them over.
    let frames: Vec<u8> = (0..40 * 16 * 12)
        .map(|i| ((i % 192) as u32 * 7 % 251) as u8)
        .collect();
    std::fs::write(&stream, frames).unwrap();
    let profile = dir.join("tiny-camera.toml");
    std::fs::write(
        &profile,
        format!(
            r#"[profile]
description = "test camera"
memory_budget_mib = 512
checkpoint_every_steps = 100
export_precision = "f32"
frame_source = "stream:{}@16x12"

[model]
width = 8
dim = 16
image_size = 12
in_channels = 1

[train]
batch = 4
"#,
            stream.display()
        ),
    )
    .unwrap();
    (profile, stream)
}

fn pretrain(profile: &Path, out: &Path, extra: &[&str]) -> Output {
    edgessl()
        .arg("pretrain")
        .arg("--profile")
        .arg(profile)
        .args(["--steps", "2", "--no-eval", "--log-every", "1", "--out"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn the_profile_frame_source_is_the_default_and_a_typed_flag_wins() {
    let dir = tempfile::tempdir().unwrap();
    let (profile, stream) = camera_profile(dir.path());

    let out = pretrain(&profile, &dir.path().join("from-profile"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("frames from profile tiny-camera"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("stream 16x12 from {}", stream.display())),
        "{stderr}"
    );
    let summary = std::fs::read_to_string(dir.path().join("from-profile/summary.json")).unwrap();
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["steps"], 2);
    assert_eq!(summary["frames_this_run"], 8);

    let out = pretrain(
        &profile,
        &dir.path().join("typed"),
        &["--data", "synthetic:64"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("frames from profile"), "{stderr}");
    assert!(!stderr.contains("camera.raw"), "{stderr}");
}

#[test]
fn a_missing_profile_stream_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (profile, stream) = camera_profile(dir.path());
    std::fs::remove_file(&stream).unwrap();
    let out = pretrain(&profile, &dir.path().join("run"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("camera.raw"), "{stderr}");
}

#[test]
fn each_kind_of_frame_source_sets_the_data_arguments() {
    let mut data = DataArgs::default();
    FrameSourceSpec::parse("synthetic")
        .unwrap()
        .apply_to(&mut data)
        .unwrap();
    assert!(matches!(data.data, DataSpec::Synthetic { .. }));

    let mut data = DataArgs::default();
    FrameSourceSpec::parse("data:cifar10:/data/cifar")
        .unwrap()
        .apply_to(&mut data)
        .unwrap();
    assert_eq!(
        data.data,
        DataSpec::Cifar10 {
            dir: "/data/cifar".into()
        }
    );

    let mut data = DataArgs::default();
    let err = FrameSourceSpec::parse("data:imagenet")
        .unwrap()
        .apply_to(&mut data)
        .unwrap_err();
    assert!(format!("{err:#}").contains("data:imagenet"), "{err:#}");

    let mut data = DataArgs::default();
    FrameSourceSpec::parse("frames:~/Pictures/edgessl")
        .unwrap()
        .apply_to(&mut data)
        .unwrap();
    let home = std::env::var_os("HOME").map(PathBuf::from);
    match home {
        Some(home) => assert_eq!(data.frames, Some(home.join("Pictures/edgessl"))),
        None => assert_eq!(data.frames, Some("~/Pictures/edgessl".into())),
    }

    let mut data = DataArgs::default();
    FrameSourceSpec::parse("stream:/tmp/cam.fifo@320x240")
        .unwrap()
        .apply_to(&mut data)
        .unwrap();
    assert_eq!(data.stream.as_deref(), Some("/tmp/cam.fifo"));
    let size = data.stream_size.unwrap();
    assert_eq!((size.width, size.height), (320, 240));
}
