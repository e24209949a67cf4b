//! Running the PyTorch peer (`benches/pytorch_reference.py`) from `bench throughput --pytorch`.

use crate::config::TrainConfig;
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the script lives relative to the repository root.
pub const SCRIPT: &str = "benches/pytorch_reference.py";

/// What the script prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PytorchReport {
    /// Method name as the script calls it (`byol`, `simsiam`, `linear`, `directpred`, ...).
    pub method: String,
    /// Frames per batch.
    pub batch: usize,
    /// Frames per second.
    pub images_per_sec: f64,
    /// ru_maxrss of the script's process.
    pub peak_rss_bytes: u64,
    /// torch version.
    pub torch: String,
    /// torch's intra-op threads.
    pub threads: usize,
}

/// The script: `./benches/...` from the current directory, else next to the crate this
/// binary was built from.
pub fn find_script() -> Option<PathBuf> {
    let here = PathBuf::from(SCRIPT);
    if here.is_file() {
        return Some(here);
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join(SCRIPT);
    built.is_file().then_some(built)
}

/// `Ok(version)` when `python` can import torch, else why not.
pub fn torch_version(python: &str) -> Result<String, String> {
    let out = Command::new(python)
        .args(["-c", "import torch; print(torch.__version__)"])
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "{python} cannot import torch ({}); install it (`pip install torch`) or pass --python",
            err.lines().last().unwrap_or("no message").trim()
        ))
    }
}

/// The script's name for a method label (`byol`, `simsiam`, `linear`, `directpred`, `directcopy`).
fn script_method(label: &str) -> Option<&'static str> {
    ["byol", "simsiam", "linear", "directpred", "directcopy"]
        .into_iter()
        .find(|m| *m == label)
}

/// Run the script for `config`'s method and shape with `threads` torch threads.
pub fn run_reference(
    python: &str,
    script: &Path,
    config: &TrainConfig,
    steps: u64,
    warmup: u64,
    threads: usize,
) -> anyhow::Result<PytorchReport> {
    let label = config.method.label();
    let Some(method) = script_method(&label) else {
        bail!("the PyTorch reference has no `{label}` method");
    };
    if config.model.trunk != crate::model::TrunkKind::Compact || config.model.blocks != 1 {
        bail!("the PyTorch reference implements the compact trunk with 1 block per stage only");
    }
    let m = &config.model;
    let args = [
        ("--method", method.to_string()),
        ("--batch", config.train.batch.to_string()),
        ("--steps", steps.to_string()),
        ("--warmup", warmup.to_string()),
        ("--threads", threads.to_string()),
        ("--width", m.width.to_string()),
        ("--image-size", m.image_size.to_string()),
        ("--in-channels", m.in_channels.to_string()),
        ("--projector-hidden", m.projector_hidden.to_string()),
        (
            "--predictor-hidden",
            config.method.predictor_hidden.to_string(),
        ),
        ("--dim", m.dim.to_string()),
    ];
    let mut cmd = Command::new(python);
    cmd.arg(script);
    for (k, v) in &args {
        cmd.arg(k).arg(v);
    }
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {python} {}", script.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}{}",
            script.display(),
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .with_context(|| format!("{} printed no JSON: {stdout:?}", script.display()))?;
    serde_json::from_str(line).with_context(|| format!("{}: bad JSON {line:?}", script.display()))
}
