//! The figures of `edgessl plot`: what a training log says about learning and collapse.

use super::chart::{Figure, ImageFormat, LineChart, Series};
use crate::monitor::LogRecord;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// Draws every figure the log has data for into `out_dir` (created if missing):
/// `loss` (loss and throughput), `knn`, `alignment` (cos alignment, asymmetry, commutator),
/// `collapse` (output spread and effective rank) and `spectrum` (eigenvalues of F and of Wp's
/// symmetric part at `spectrum_step`, default the last logged spectrum; the nearest logged step
/// is used when there is none at exactly that step).
///
/// Returns the written files; figures without data are skipped with a note on stderr.
pub fn plot_training_log(
    records: &[LogRecord],
    out_dir: &Path,
    format: ImageFormat,
    spectrum_step: Option<u64>,
) -> Result<Vec<PathBuf>> {
    if records.is_empty() {
        bail!("the log has no records to plot");
    }
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("creating output folder {}", out_dir.display()))?;
    let x = |r: &LogRecord| r.step as f64;
    let scalar = |label: &str, f: &dyn Fn(&LogRecord) -> Option<f64>| {
        Series::new(
            label,
            records
                .iter()
                .filter_map(|r| f(r).map(|v| (x(r), v)))
                .collect(),
        )
    };

    let mut figures: Vec<(&str, Figure)> = vec![
        (
            "loss",
            Figure::new(vec![
                LineChart::new("Training loss", "step", "loss")
                    .with(scalar("loss", &|r| Some(r.loss))),
                LineChart::new("Throughput", "step", "images / s")
                    .with(scalar("images/s", &|r| Some(r.images_per_sec))),
            ]),
        ),
        (
            "knn",
            Figure::new(vec![
                LineChart::new("Weighted kNN accuracy", "step", "top-1 (%)")
                    .with(scalar("kNN top-1", &|r| r.knn_top1.map(|v| 100.0 * v))),
            ]),
        ),
        (
            "alignment",
            Figure::new(vec![
                LineChart::new(
                    "Eigenspace alignment of Wp with F",
                    "step",
                    "cosine / ratio",
                )
                .with(scalar("mean cos(Wp u_j, u_j)", &|r| r.alignment_mean))
                .with(scalar("asymmetry |Wp - Wp^T| / |Wp|", &|r| r.asymmetry)),
                LineChart::new(
                    "Relative commutator |[F, Wp]| / (|F| |Wp|)",
                    "step",
                    "ratio",
                )
                .log_y()
                .with(scalar("commutator", &|r| r.commutator)),
            ]),
        ),
        (
            "collapse",
            Figure::new(vec![
                LineChart::new(
                    "Output spread (1 healthy, 0 collapsed)",
                    "step",
                    "sqrt(d) * std",
                )
                .with(scalar("collapse std", &|r| r.collapse_std)),
                LineChart::new("Effective rank of F", "step", "exp(entropy)")
                    .with(scalar("effective rank", &|r| r.effective_rank)),
            ]),
        ),
    ];
    if let Some(fig) = spectrum_figure(records, spectrum_step)? {
        figures.push(("spectrum", fig));
    } else {
        eprintln!("note: the log holds no eigenvalue spectra; skipping the spectrum figure");
    }

    let mut written = Vec::new();
    for (stem, fig) in figures {
        if fig.panels.iter().all(LineChart::is_empty) {
            eprintln!("note: the log has no data for `{stem}`; skipped");
            continue;
        }
        written.push(fig.save(out_dir, stem, format)?);
    }
    Ok(written)
}

/// The spectra figure at the requested (or last) step, `None` if no record has spectra.
fn spectrum_figure(records: &[LogRecord], step: Option<u64>) -> Result<Option<Figure>> {
    let with_spectra: Vec<&LogRecord> = records
        .iter()
        .filter(|r| r.f_eigenvalues.is_some() || r.wp_eigenvalues.is_some())
        .collect();
    let Some(&last) = with_spectra.last() else {
        if let Some(s) = step {
            bail!("--step {s}: the log holds no eigenvalue spectra at any step");
        }
        return Ok(None);
    };
    let rec = match step {
        None => last,
        Some(s) => with_spectra
            .iter()
            .copied()
            .min_by_key(|r| r.step.abs_diff(s))
            .unwrap_or(last),
    };
    let indexed = |v: &Option<Vec<f64>>| -> Vec<(f64, f64)> {
        v.iter()
            .flatten()
            .enumerate()
            .map(|(i, &e)| (i as f64, e))
            .collect()
    };
    Ok(Some(Figure::new(vec![
        LineChart::new(
            &format!("Eigenvalues of F at step {}", rec.step),
            "mode (largest first)",
            "eigenvalue",
        )
        .log_y()
        .with(Series::new("F", indexed(&rec.f_eigenvalues))),
        LineChart::new(
            &format!("Eigenvalues of sym(Wp) at step {}", rec.step),
            "mode (largest first)",
            "eigenvalue",
        )
        .with(Series::new("Wp", indexed(&rec.wp_eigenvalues))),
    ])))
}
