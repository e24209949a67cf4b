//! `--heap` (or `EDGESSL_HEAP`) picks the heap policy of a run; `summary.json` records it,
//! and a bad value is refused with the flag named.

use std::path::Path;
use std::process::Output;

fn pretrain(out: &Path, heap_flag: &[&str], env: Option<&str>) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_edgessl"));
    cmd.arg("pretrain")
        .args(heap_flag)
        .args(["--data", "synthetic:64", "--width", "8", "--dim", "16"])
        .args([
            "--image-size",
            "12",
            "--batch",
            "4",
            "--steps",
            "1",
            "--no-eval",
        ])
        .arg("--out")
        .arg(out)
        .env_remove("EDGESSL_HEAP");
    if let Some(v) = env {
        cmd.env("EDGESSL_HEAP", v);
    }
    cmd.output().unwrap()
}

fn recorded_heap(out: &Path) -> String {
    let text = std::fs::read_to_string(out.join("summary.json")).unwrap();
    let summary: serde_json::Value = serde_json::from_str(&text).unwrap();
    summary["heap"].as_str().unwrap().to_string()
}

#[test]
fn the_heap_policy_comes_from_the_flag_or_the_environment_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str], Option<&str>, &str); 3] = [
        ("default", &[], None, "retain"),
        ("flag", &["--heap", "release"], None, "release"),
        ("env", &[], Some("release"), "release"),
    ];
    for (name, flag, env, want) in cases {
        let out_dir = dir.path().join(name);
        let out = pretrain(&out_dir, flag, env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        assert!(stderr.contains(&format!("heap {want}")), "{name}: {stderr}");
        assert_eq!(recorded_heap(&out_dir), want, "{name}");
    }
}

#[test]
fn an_unknown_heap_policy_is_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = pretrain(&dir.path().join("bad"), &["--heap", "hoard"], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--heap") && stderr.contains("hoard"),
        "{stderr}"
    );
    assert!(!dir.path().join("bad/summary.json").exists());
}
