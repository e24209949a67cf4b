//! The pretrain command as a user runs it: bad flags are errors with exit code 1, a short run
//! writes its files, and the checkpoints survive SIGKILL.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn edgessl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edgessl"))
}

/// Tiny synthetic run flags.
const TINY: &[&str] = &[
    "--data",
    "synthetic",
    "--image-size",
    "12",
    "--width",
    "8",
    "--dim",
    "16",
    "--batch",
    "8",
    "--log-every",
    "2",
    "--no-eval",
];

#[test]
fn bad_flags_are_clear_errors_not_panics() {
    for (flags, needle) in [
        (vec!["--rho", "-1"], "method.rho"),
        (vec!["--eps", "-0.5"], "method.eps"),
        (
            vec!["--method", "contrastive"],
            "invalid value 'contrastive'",
        ),
        (vec!["--in-channels", "2"], "model.in_channels"),
        (vec!["--image-size", "4"], "model.image_size"),
        (
            vec!["--config", "does/not/exist.toml"],
            "does/not/exist.toml",
        ),
    ] {
        let out = edgessl()
            .arg("pretrain")
            .args(&flags)
            .args(["--out", "target/cli-bad"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flags:?} was accepted");
        assert!(!stderr.contains("panicked"), "{flags:?} panicked: {stderr}");
        assert!(stderr.contains(needle), "{flags:?}: {stderr}");
    }
}

#[test]
fn a_short_run_writes_config_log_checkpoint_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let status = edgessl()
        .arg("pretrain")
        .args(TINY)
        .args(["--steps", "4", "--checkpoint-every", "2", "--out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    for file in [
        "config.toml",
        "log.jsonl",
        "encoder.edgessl",
        "encoder.safetensors",
        "encoder.edgessl.card.toml",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let ckpts: Vec<_> = std::fs::read_dir(out.join("checkpoints"))
        .unwrap()
        .collect();
    assert_eq!(ckpts.len(), 2, "checkpoints at steps 2 and 4");
    let log = std::fs::read_to_string(out.join("log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 2);
    // The written config reproduces the run.
    let config = edgessl::config::TrainConfig::load(&out.join("config.toml")).unwrap();
    assert_eq!((config.train.steps, config.model.image_size), (4, 12));
    // And the export verifies.
    let inspect = edgessl()
        .arg("inspect")
        .arg(out.join("encoder.edgessl"))
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stdout)
    );
}

/// Step of the newest checkpoint file that verifies. Read-only: opening a `CheckpointStore`
/// would clean temporary files, including the one a running writer is filling.
fn newest_checkpoint_verifies(dir: &Path) -> Option<u64> {
    use edgessl::checkpoint::{CheckpointStore, PayloadKind, read_file};
    let mut steps: Vec<(u64, std::path::PathBuf)> = std::fs::read_dir(dir.join("checkpoints"))
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            Some((
                CheckpointStore::parse_file_name(e.file_name().to_str()?)?,
                e.path(),
            ))
        })
        .collect();
    steps.sort();
    steps.into_iter().rev().find_map(|(step, path)| {
        read_file::<edgessl::run::RunCheckpoint>(&path, PayloadKind::Checkpoint)
            .ok()
            .map(|_| step)
    })
}

fn checkpoint_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("checkpoints")).map_or(0, |d| d.count())
}

#[test]
fn sigkill_at_random_moments_always_leaves_a_checkpoint_that_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    // Pseudo-random extra delays after the run has started writing checkpoints (one per step),
    // so the kills land at different points of the write / rename / rotate cycle.
    let delays_ms = [0u64, 37, 113, 261, 5, 190, 77, 340];
    let mut last_step = 0;
    for (i, delay) in delays_ms.iter().enumerate() {
        let mut cmd = edgessl();
        cmd.arg("pretrain")
            .args(TINY)
            .args([
                "--steps",
                "100000",
                "--checkpoint-every",
                "1",
                "--keep",
                "2",
                "--out",
            ])
            .arg(&out);
        if i > 0 {
            cmd.arg("--resume");
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        let before = last_step;
        // Wait until this run has written a checkpoint of its own.
        while newest_checkpoint_verifies(&out).unwrap_or(0) <= before
            && t0.elapsed() < Duration::from_secs(120)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(*delay));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let step = newest_checkpoint_verifies(&out).expect("no valid checkpoint after SIGKILL");
        assert!(step > before, "round {i}: no progress past step {before}");
        assert!(checkpoint_files(&out) <= 3, "rotation left too many files");
        last_step = step;
    }
    // A final resume finishes a few more steps from the newest checkpoint.
    let status = edgessl()
        .arg("pretrain")
        .args(TINY)
        .args(["--resume", "--steps"])
        .arg((last_step + 2).to_string())
        .args(["--checkpoint-every", "1", "--out"])
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(newest_checkpoint_verifies(&out), Some(last_step + 2));
}
