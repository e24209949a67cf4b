//! `bench throughput --rounds`: every round measured and shown, the profile taken once, and
//! the reference's absence reported rather than fatal.

fn edgessl(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_edgessl"))
        .args(args)
        .output()
        .unwrap()
}

mod common;

/// `bench throughput` on two methods of the tiny model, one timed step each.
fn tiny() -> Vec<&'static str> {
    let mut args = vec!["bench", "throughput", "--methods", "simsiam,directpred"];
    args.extend(common::TINY_MODEL_FLAGS);
    args.extend([
        "--batch", "4", "--warmup", "0", "--steps", "1", "--roof-n", "64",
    ]);
    args
}

#[test]
fn rounds_are_each_measured_and_tabled() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("t.json");
    let mut args = tiny();
    let json_arg = json.to_str().unwrap();
    args.extend([
        "--rounds",
        "3",
        "--profile-ops",
        "--pytorch",
        "--python",
        "/nonexistent/python",
        "--json",
        json_arg,
    ]);
    let out = edgessl(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("## All 3 rounds"), "{stdout}");
    assert!(stdout.contains("PyTorch comparison skipped"), "{stdout}");
    for method in ["simsiam", "directpred"] {
        let row = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with(&format!("| {method} ")))
            .unwrap_or_else(|| panic!("no {method} row in\n{stdout}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        // img/s, fraction of the roof and of the sgemm speed during the steps: one value
        // per round; no reference, no ratio.
        assert_eq!(cells[3].split(" / ").count(), 3, "{row}");
        assert_eq!(cells[4].split(" / ").count(), 3, "{row}");
        let during: Vec<&str> = cells[5].split(" / ").collect();
        assert_eq!(during.len(), 3, "{row}");
        assert!(during.iter().all(|d| d.ends_with(" %")), "{row}");
        assert_eq!(cells[8], "-", "{row}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rounds = report["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 3);
    for (i, round) in rounds.iter().enumerate() {
        let rows = round["backends"][0]["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 2, "round {i}");
        assert!(
            rows.iter()
                .all(|r| r["images_per_sec"].as_f64().unwrap() > 0.0)
        );
        // The machine's sgemm speed was sampled between the steps.
        assert!(
            rows.iter()
                .all(|r| r["roof_during_gflops"].as_f64().unwrap() > 0.0)
        );
        // The per-op profile is recorded in round 1 only (it perturbs the timing).
        assert_eq!(rows[0].get("profile").is_some(), i == 0, "round {i}");
    }
    assert_eq!(report["backends"], rounds[0]["backends"]);
}

#[test]
fn zero_rounds_is_refused_by_name() {
    let mut args = tiny();
    args.extend(["--rounds", "0"]);
    let out = edgessl(&args);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--rounds 0"), "{stderr}");
}
