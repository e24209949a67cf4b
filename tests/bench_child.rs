//! `bench memory`'s child process and the CLI around it, with the real binary.

use edgessl::bench::accounting::ParamCounts;
use edgessl::bench::child::spawn_child_with;
use edgessl::config::TrainConfig;
use edgessl::ssl::PredictorKind;
use std::path::Path;
use std::process::Command;

const EXE: &str = env!("CARGO_BIN_EXE_edgessl");

fn tiny(predictor: PredictorKind) -> TrainConfig {
    let mut c = TrainConfig::default();
    c.model.width = 8;
    c.model.image_size = 12;
    c.model.projector_hidden = 32;
    c.model.dim = 16;
    c.method.predictor = predictor;
    c.method.predictor_hidden = 32;
    c.train.batch = 4;
    c.train.steps = 2;
    c.train.threads = 1;
    c
}

#[test]
fn memory_child_reports_parseable_json_after_real_steps() {
    for predictor in [PredictorKind::Mlp, PredictorKind::Directpred] {
        let c = tiny(predictor);
        let r = spawn_child_with(Path::new(EXE), &c, None).unwrap();
        assert_eq!(r.method, c.method.label());
        assert_eq!((r.batch, r.steps), (4, 2));
        assert!(r.baseline_hwm_bytes > 0, "VmHWM is readable on Linux");
        assert!(r.before_step_hwm_bytes >= r.baseline_hwm_bytes);
        assert!(r.peak_hwm_bytes >= r.before_step_hwm_bytes);
        assert!(r.last_loss.is_finite());
        assert_eq!(
            r.online_params,
            ParamCounts::new(&c.model, &c.method).online_total()
        );
    }
}

#[test]
fn memory_child_rejects_a_bad_config() {
    let out = Command::new(EXE)
        .args(["bench", "memory-child", "--config-json", "{\"model\": 3}"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config-json"));
}

#[test]
fn bench_memory_cli_writes_table_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("mem.json");
    let out = Command::new(EXE)
        .args([
            "bench",
            "memory",
            "--methods",
            "simsiam,directpred",
            "--width",
            "8",
            "--image-size",
            "12",
        ])
        .args([
            "--projector-hidden",
            "32",
            "--dim",
            "16",
            "--predictor-hidden",
            "32",
            "--batch",
            "4",
        ])
        .args(["--steps", "1", "--threads", "1", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("| simsiam") && stdout.contains("| directpred"),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["rows"].as_array().unwrap().len(), 2);
}

#[test]
fn bench_budget_cli_uses_the_profile_budget_and_refuses_tiny_budgets() {
    let ok = Command::new(EXE)
        .args([
            "bench",
            "budget",
            "--profile",
            "generic-cpu",
            "--methods",
            "byol,directpred",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        stdout.contains("budget 2048 MiB") && stdout.contains("| directpred"),
        "{stdout}"
    );
    let tiny = Command::new(EXE)
        .args([
            "bench",
            "budget",
            "--budget-mib",
            "4",
            "--methods",
            "directpred",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&tiny.stdout);
    assert!(
        stdout.contains("does not fit") && stdout.contains("too small"),
        "{stdout}"
    );
}
