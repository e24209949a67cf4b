//! `edgessl bench accuracy` as a user runs it: real pretrain and eval children per row, one
//! table and JSON, finished rows reused on a re-run, bad rows named.

use std::path::Path;
use std::process::{Command, Output};

const TINY: &[&str] = &[
    "--profile",
    "none",
    "--steps",
    "3",
    "--batch",
    "8",
    "--eval-train",
    "120",
    "--probe-epochs",
    "2",
    "--extra=--data=synthetic:120",
    "--extra=--image-size=12",
    "--extra=--width=8",
    "--extra=--dim=16",
];

fn bench(out: &Path, rows: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgessl"))
        .args(["bench", "accuracy", "--rows", rows])
        .args(TINY)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn modified(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[test]
fn rows_train_evaluate_and_land_in_one_table() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("acc");
    let run = bench(&out, "raw,directpred,no-predictor", &[]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&run.stdout);
    for label in ["raw pixels", "DirectPred, freq 1", "ablation: no predictor"] {
        assert!(stdout.contains(label), "{label} missing from\n{stdout}");
    }
    assert_eq!(
        std::fs::read_to_string(out.join("accuracy.md")).unwrap(),
        stdout
    );

    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("accuracy.json")).unwrap()).unwrap();
    assert_eq!(rows.len(), 3);
    let raw = &rows[0];
    assert!(raw["training"].is_null());
    assert_eq!(raw["eval"]["dim"], 144, "raw pixels of 12x12 gray");
    for row in &rows {
        let knn = row["eval"]["knn"]["top1"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&knn));
        assert_eq!(row["eval"]["n_train"], 120);
    }
    let dp = &rows[1];
    assert_eq!(dp["training"]["steps"], 3);
    assert_eq!(dp["training"]["frames_this_run"], 24);
    assert!(dp["training"]["peak_rss_bytes"].as_u64().unwrap() > 1 << 20);
    assert!(dp["training"]["images_per_sec"].as_f64().unwrap() > 0.0);
    // DirectPred builds Wp from F's eigenvectors, so they are aligned by construction.
    let alignment = dp["final_alignment"].as_f64().unwrap();
    assert!(alignment > 0.99, "DirectPred alignment {alignment}");
    assert!(
        rows[2]["final_alignment"].is_null(),
        "no predictor, no alignment"
    );
    assert_eq!(rows[2]["should_collapse"], true);
    assert!(out.join("directpred/encoder.edgessl").is_file());

    // The same command again reuses every finished row; --force runs them again.
    let stamp = modified(&out.join("directpred/pretrain.out"));
    let again = bench(&out, "raw,directpred,no-predictor", &[]);
    assert!(again.status.success());
    assert_eq!(String::from_utf8_lossy(&again.stdout), stdout);
    assert_eq!(modified(&out.join("directpred/pretrain.out")), stamp);
    let forced = bench(&out, "directpred", &["--force"]);
    assert!(forced.status.success());
    assert_ne!(modified(&out.join("directpred/pretrain.out")), stamp);
}

#[test]
fn an_unknown_row_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = bench(&dir.path().join("acc"), "directpred,mocov3", &[]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(stderr.contains("--rows mocov3"), "{stderr}");
    assert!(stderr.contains("directcopy"), "lists the rows: {stderr}");
}
