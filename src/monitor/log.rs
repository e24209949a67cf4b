//! The JSONL training log: one [`LogRecord`] per line, written by the trainer every K steps,
//! read back by `edgessl plot` and exported as CSV for spreadsheets.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// One logged point of a training run. Optional fields are omitted from the JSON when absent,
/// so logs stay small and older readers ignore newer fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Optimiser step (global, from 0).
    pub step: u64,
    /// Epoch the step belongs to (from 0).
    pub epoch: u64,
    /// Training loss averaged since the previous record.
    pub loss: f64,
    /// Throughput since the previous record.
    pub images_per_sec: f64,
    /// Learning rate at this step.
    pub lr: f64,
    /// Weighted-kNN top-1 accuracy in [0, 1], when an evaluation ran at this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knn_top1: Option<f64>,
    /// Mean `cos(Wp u_j, u_j)` over the leading eigenvectors of F.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alignment_mean: Option<f64>,
    /// `‖[F, Wp]‖_F / (‖F‖_F ‖Wp‖_F)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commutator: Option<f64>,
    /// `‖Wp − Wpᵀ‖_F / ‖Wp‖_F`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asymmetry: Option<f64>,
    /// `√d ·` mean per-dimension std of the ℓ2-normalised projector outputs (≈1 healthy, 0
    /// collapsed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collapse_std: Option<f64>,
    /// Effective rank of F.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_rank: Option<f64>,
    /// Eigenvalues of F, largest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f_eigenvalues: Option<Vec<f64>>,
    /// Eigenvalues of the symmetric part of Wp, largest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wp_eigenvalues: Option<Vec<f64>>,
    /// Seconds since the run started.
    pub wall_secs: f64,
}

/// Appends records to a JSONL file, flushing after each so a killed run keeps its log.
pub struct LogWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl LogWriter {
    /// Creates (truncates) `path`.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file =
            File::create(&path).with_context(|| format!("creating log {}", path.display()))?;
        Ok(Self {
            path,
            out: BufWriter::new(file),
        })
    }

    /// Opens `path` for appending (a resumed run continues its log), creating it if missing.
    pub fn append(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening log {}", path.display()))?;
        Ok(Self {
            path,
            out: BufWriter::new(file),
        })
    }

    /// Writes one record as a JSON line and flushes.
    pub fn write(&mut self, record: &LogRecord) -> Result<()> {
        // serde_json turns NaN into `null`, which would not read back into an f64: refuse it here
        // with a message instead of producing an unreadable log.
        for (name, v) in [
            ("loss", record.loss),
            ("images_per_sec", record.images_per_sec),
            ("lr", record.lr),
            ("wall_secs", record.wall_secs),
        ] {
            if !v.is_finite() {
                anyhow::bail!("log record at step {}: {name} is {v}", record.step);
            }
        }
        serde_json::to_writer(&mut self.out, record)?;
        self.out.write_all(b"\n")?;
        self.out
            .flush()
            .with_context(|| format!("writing log {}", self.path.display()))
    }
}

/// Reads every record of a JSONL log. Blank lines are skipped; a malformed line is an error
/// naming the file and line number.
pub fn read_jsonl(path: impl AsRef<Path>) -> Result<Vec<LogRecord>> {
    let path = path.as_ref();
    let file = File::open(path).with_context(|| format!("opening log {}", path.display()))?;
    let mut records = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let rec: LogRecord = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a log record", path.display(), i + 1))?;
        records.push(rec);
    }
    Ok(records)
}

/// Writes the scalar columns of `records` as CSV (spectra are left out; empty cell = absent).
pub fn write_csv(records: &[LogRecord], path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::new(file);
    writeln!(
        out,
        "step,epoch,loss,images_per_sec,lr,knn_top1,alignment_mean,commutator,asymmetry,\
         collapse_std,effective_rank,wall_secs"
    )?;
    let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    for r in records {
        writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            r.step,
            r.epoch,
            r.loss,
            r.images_per_sec,
            r.lr,
            opt(r.knn_top1),
            opt(r.alignment_mean),
            opt(r.commutator),
            opt(r.asymmetry),
            opt(r.collapse_std),
            opt(r.effective_rank),
            r.wall_secs
        )?;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))
}
