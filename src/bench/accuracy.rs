//! `bench accuracy`: every method and ablation at one pretraining budget, as one table.
//!
//! Each row is real processes of this binary: `edgessl pretrain` (no final evaluation), then
//! `edgessl eval` on the run folder, so every row is evaluated by exactly the protocol a user
//! gets from the CLI, and peak RSS is per row (VmHWM never goes down inside one process).
//! A finished row leaves `row.json` in its folder; re-running the same command skips it, so an
//! interrupted table resumes where it stopped.

use crate::bench::table::{Table, mib};
use crate::run::TrainingSummary;
use crate::run::evaluate::EvalReport;
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// How a row's encoder comes about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    /// No training: `edgessl eval --baseline NAME`.
    Baseline(&'static str),
    /// `edgessl pretrain` with these flags, then `edgessl eval`.
    Pretrain(&'static [&'static str]),
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowSpec {
    /// Short key (folder name, `--rows` value).
    pub key: &'static str,
    /// What the row is, for the table.
    pub label: &'static str,
    /// How it is produced.
    pub kind: RowKind,
    /// Whether the paper predicts this row collapses.
    pub should_collapse: bool,
}

/// The rows of the paper's Tables 3 and 8, in table order.
pub const ROWS: &[RowSpec] = &[
    RowSpec {
        key: "raw",
        label: "raw pixels",
        kind: RowKind::Baseline("raw"),
        should_collapse: false,
    },
    RowSpec {
        key: "random",
        label: "random-init trunk",
        kind: RowKind::Baseline("random"),
        should_collapse: false,
    },
    RowSpec {
        key: "byol",
        label: "BYOL, 2-layer predictor",
        kind: RowKind::Pretrain(&["--method", "byol"]),
        should_collapse: false,
    },
    RowSpec {
        key: "byol-linear",
        label: "BYOL, trained linear predictor",
        kind: RowKind::Pretrain(&["--method", "linear"]),
        should_collapse: false,
    },
    RowSpec {
        key: "simsiam",
        label: "SimSiam",
        kind: RowKind::Pretrain(&["--method", "simsiam"]),
        should_collapse: false,
    },
    RowSpec {
        key: "directpred",
        label: "DirectPred, freq 1",
        kind: RowKind::Pretrain(&["--method", "directpred", "--freq", "1"]),
        should_collapse: false,
    },
    RowSpec {
        key: "directpred-f5",
        label: "DirectPred, freq 5",
        kind: RowKind::Pretrain(&["--method", "directpred", "--freq", "5"]),
        should_collapse: false,
    },
    RowSpec {
        key: "directcopy",
        label: "DirectCopy",
        kind: RowKind::Pretrain(&["--method", "directcopy"]),
        should_collapse: false,
    },
    RowSpec {
        key: "no-predictor",
        label: "ablation: no predictor",
        kind: RowKind::Pretrain(&["--method", "byol", "--predictor", "none"]),
        should_collapse: true,
    },
    RowSpec {
        key: "no-stop-gradient",
        label: "ablation: no stop-gradient",
        kind: RowKind::Pretrain(&["--method", "byol", "--no-stop-gradient"]),
        should_collapse: true,
    },
    RowSpec {
        key: "symmetric-no-ema",
        label: "ablation: symmetric linear, no EMA",
        kind: RowKind::Pretrain(&["--method", "linear", "--symmetric", "--ema", "0"]),
        should_collapse: true,
    },
];

/// The row with this key.
pub fn row(key: &str) -> anyhow::Result<&'static RowSpec> {
    ROWS.iter().find(|r| r.key == key).with_context(|| {
        let keys: Vec<_> = ROWS.iter().map(|r| r.key).collect();
        format!("--rows {key}: unknown row (one of {})", keys.join(", "))
    })
}

/// What every row shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Device profile the runs start from (`none` for built-in defaults).
    pub profile: String,
    /// Pretraining steps.
    pub steps: u64,
    /// Frames per batch.
    pub batch: usize,
    /// Seed of weights, augmentations and the probe.
    pub seed: u64,
    /// Training images for the kNN bank and the probe.
    pub eval_train: usize,
    /// At most this many scored images (None: the whole test split).
    pub eval_test: Option<usize>,
    /// Epochs of the linear probe.
    pub probe_epochs: usize,
    /// Score on 20 % of the training split instead of the test split.
    pub holdout: bool,
    /// Extra flags given to every `pretrain` (e.g. `--threads 2`, `--data ...`).
    pub extra: Vec<String>,
}

impl Budget {
    fn common(&self) -> Vec<String> {
        let mut a = vec![
            "--profile".into(),
            self.profile.clone(),
            "--seed".into(),
            self.seed.to_string(),
        ];
        a.extend(self.extra.iter().cloned());
        a
    }

    /// The `edgessl pretrain` arguments of a row (none for baselines).
    pub fn pretrain_args(&self, spec: &RowSpec, dir: &Path) -> Option<Vec<String>> {
        let RowKind::Pretrain(flags) = spec.kind else {
            return None;
        };
        let mut a: Vec<String> = vec!["pretrain".into()];
        a.extend(flags.iter().map(|s| s.to_string()));
        a.extend(self.common());
        a.extend([
            "--steps".into(),
            self.steps.to_string(),
            "--batch".into(),
            self.batch.to_string(),
            "--out".into(),
            dir.display().to_string(),
            "--no-eval".into(),
            "--knn-every".into(),
            "0".into(),
            "--checkpoint-every".into(),
            "0".into(),
            "--keep".into(),
            "1".into(),
        ]);
        Some(a)
    }

    /// The `edgessl eval` arguments of a row.
    pub fn eval_args(&self, spec: &RowSpec, dir: &Path) -> Vec<String> {
        let mut a: Vec<String> = vec!["eval".into()];
        match spec.kind {
            RowKind::Baseline(name) => a.extend(["--baseline".into(), name.into()]),
            RowKind::Pretrain(_) => a.extend(["--model".into(), dir.display().to_string()]),
        }
        a.extend(self.common());
        a.extend([
            "--train-limit".into(),
            self.eval_train.to_string(),
            "--probe-epochs".into(),
            self.probe_epochs.to_string(),
            "--json".into(),
            dir.join("eval.json").display().to_string(),
        ]);
        if let Some(n) = self.eval_test {
            a.extend(["--test-limit".into(), n.to_string()]);
        }
        if self.holdout {
            a.push("--holdout".into());
        }
        a
    }
}

/// A finished row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowResult {
    /// Row key.
    pub key: String,
    /// Row label.
    pub label: String,
    /// Whether the paper predicts collapse for this row.
    pub should_collapse: bool,
    /// The exact commands that produced it (arguments after `edgessl`).
    pub commands: Vec<Vec<String>>,
    /// The shared budget it ran under.
    pub budget: Budget,
    /// Pretraining totals (None for baselines).
    pub training: Option<TrainingSummary>,
    /// Mean eigenspace alignment of Wp with F at the last log record (linear predictors).
    pub final_alignment: Option<f64>,
    /// Collapse std of the ℓ2-normalised projector outputs at the last log record.
    pub final_collapse_std: Option<f64>,
    /// kNN and probe accuracy.
    pub eval: EvalReport,
}

/// The last value of `field` in a `log.jsonl`.
pub fn last_logged(log: &Path, field: &str) -> anyhow::Result<Option<f64>> {
    let text =
        std::fs::read_to_string(log).with_context(|| format!("cannot read {}", log.display()))?;
    let mut last = None;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not JSON", log.display(), i + 1))?;
        if let Some(x) = v.get(field).and_then(|x| x.as_f64()) {
            last = Some(x);
        }
    }
    Ok(last)
}

fn run_child(exe: &Path, args: &[String], log: &Path) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let status = Command::new(exe)
        .args(args)
        .stdout(file.try_clone()?)
        .stderr(file)
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<_> = text.lines().rev().take(8).collect();
        let tail: Vec<_> = tail.into_iter().rev().collect();
        bail!(
            "`edgessl {}` failed with {status}; its output is in {}:\n{}",
            args.join(" "),
            log.display(),
            tail.join("\n")
        );
    }
    Ok(())
}

/// Run (or reuse) one row under `root/<key>/`.
pub fn run_row(
    exe: &Path,
    root: &Path,
    spec: &RowSpec,
    budget: &Budget,
    force: bool,
) -> anyhow::Result<RowResult> {
    let dir = root.join(spec.key);
    let result_path = dir.join("row.json");
    let pretrain = budget.pretrain_args(spec, &dir);
    let eval = budget.eval_args(spec, &dir);
    let commands: Vec<Vec<String>> = pretrain.iter().cloned().chain([eval.clone()]).collect();
    if !force && result_path.exists() {
        let text = std::fs::read_to_string(&result_path)
            .with_context(|| format!("cannot read {}", result_path.display()))?;
        match serde_json::from_str::<RowResult>(&text) {
            Ok(done) if done.commands == commands => return Ok(done),
            Ok(_) => eprintln!("{}: settings changed; running it again", spec.key),
            Err(e) => eprintln!(
                "{}: unreadable ({e}); running it again",
                result_path.display()
            ),
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let start = Instant::now();
    if let Some(args) = &pretrain {
        run_child(exe, args, &dir.join("pretrain.out"))?;
    }
    run_child(exe, &eval, &dir.join("eval.out"))?;
    let report_path = dir.join("eval.json");
    let eval: EvalReport = serde_json::from_str(
        &std::fs::read_to_string(&report_path)
            .with_context(|| format!("cannot read {}", report_path.display()))?,
    )
    .with_context(|| format!("{}: not an evaluation report", report_path.display()))?;
    let (training, final_alignment, final_collapse_std) = if pretrain.is_some() {
        let log = dir.join("log.jsonl");
        (
            Some(TrainingSummary::load(&dir.join("summary.json"))?),
            last_logged(&log, "alignment_mean")?,
            last_logged(&log, "collapse_std")?,
        )
    } else {
        (None, None, None)
    };
    let result = RowResult {
        key: spec.key.into(),
        label: spec.label.into(),
        should_collapse: spec.should_collapse,
        commands,
        budget: budget.clone(),
        training,
        final_alignment,
        final_collapse_std,
        eval,
    };
    std::fs::write(&result_path, serde_json::to_string_pretty(&result)?)
        .with_context(|| format!("cannot write {}", result_path.display()))?;
    eprintln!(
        "{}: done in {:.1} min — {}",
        spec.key,
        start.elapsed().as_secs_f64() / 60.0,
        result.eval.summary()
    );
    Ok(result)
}

fn pct(x: f64) -> String {
    format!("{:.1}", 100.0 * x)
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or("–".into(), |v| format!("{v:.digits$}"))
}

/// The markdown table of finished rows.
pub fn accuracy_table(rows: &[RowResult]) -> Table {
    let mut t = Table::new([
        "row",
        "train min",
        "img/s",
        "peak RSS MiB",
        "kNN top-1",
        "linear top-1",
        "alignment",
        "collapse std",
        "final loss",
    ]);
    for r in rows {
        let tr = r.training.as_ref();
        t.row([
            r.label.clone(),
            opt(tr.map(|s| s.train_secs_this_run / 60.0), 1),
            opt(tr.map(|s| s.images_per_sec), 1),
            tr.and_then(|s| s.peak_rss_bytes).map_or("–".into(), mib),
            pct(r.eval.knn.top1),
            r.eval
                .probe
                .as_ref()
                .map_or("–".into(), |p| pct(p.final_top1)),
            opt(r.final_alignment, 3),
            opt(r.final_collapse_std, 3),
            opt(tr.map(|s| s.recent_loss), 3),
        ]);
    }
    t
}

/// Where `bench accuracy` writes: the table, the JSON and one folder per row.
pub fn outputs(root: &Path) -> (PathBuf, PathBuf) {
    (root.join("accuracy.md"), root.join("accuracy.json"))
}
