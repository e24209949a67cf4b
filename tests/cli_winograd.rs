//! `--winograd` (or `EDGESSL_WINOGRAD`) switches the 3x3 stride-1 convolutions between
//! Winograd F(2x2, 3x3) and direct sums; `summary.json` records what ran, both train to the
//! same loss within rounding, and a bad value is refused with the flag named.

use std::path::Path;
use std::process::Output;

fn pretrain(out: &Path, flag: &[&str], env: Option<&str>) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_edgessl"));
    cmd.args(flag)
        .arg("pretrain")
        // 16 channels on 16x16 maps: the trunk's first-stage 3x3 convolutions qualify.
        .args(["--data", "synthetic:64", "--width", "16", "--dim", "16"])
        .args([
            "--image-size",
            "16",
            "--batch",
            "4",
            "--steps",
            "2",
            "--no-eval",
        ])
        .arg("--out")
        .arg(out)
        .env_remove("EDGESSL_WINOGRAD");
    if let Some(v) = env {
        cmd.env("EDGESSL_WINOGRAD", v);
    }
    cmd.output().unwrap()
}

fn summary(out: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("summary.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn the_switch_comes_from_the_flag_or_the_environment_is_recorded_and_changes_only_rounding() {
    let dir = tempfile::tempdir().unwrap();
    // On by default wherever the CPU has the kernels (x86-64 with AVX2 and FMA).
    let available = edgessl::ops::winograd_in_use();
    let cases: [(&str, &[&str], Option<&str>, bool); 3] = [
        ("default", &[], None, available),
        ("flag", &["--winograd", "false"], None, false),
        ("env", &[], Some("false"), false),
    ];
    let mut losses = Vec::new();
    for (name, flag, env, want) in cases {
        let out_dir = dir.path().join(name);
        let out = pretrain(&out_dir, flag, env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        let said = if want { "Winograd on" } else { "Winograd off" };
        assert!(stderr.contains(said), "{name}: {stderr}");
        let s = summary(&out_dir);
        assert_eq!(s["winograd"].as_bool(), Some(want), "{name}");
        losses.push(s["last_loss"].as_f64().unwrap());
    }
    let (on, off, env_off) = (losses[0], losses[1], losses[2]);
    assert_eq!(
        off.to_bits(),
        env_off.to_bits(),
        "direct sums run to the same bits"
    );
    assert!(
        (on - off).abs() <= 1e-3 * (1.0 + off.abs()),
        "Winograd loss {on} against direct {off}"
    );
    if available {
        // Different rounding: the switch really changed the arithmetic.
        assert_ne!(on.to_bits(), off.to_bits(), "Winograd did not run");
    }
}

#[test]
fn a_bad_value_is_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = pretrain(&dir.path().join("bad"), &["--winograd", "sometimes"], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--winograd") && stderr.contains("sometimes"),
        "{stderr}"
    );
    assert!(!dir.path().join("bad/summary.json").exists());
}
