//! kNN and linear-probe accuracy of frozen features, as one report.

use crate::eval::{
    KnnConfig, KnnResult, LabeledFeatures, ProbeConfig, ProbeReport, knn_classify, linear_probe,
};
use serde::{Deserialize, Serialize};

/// Accuracy of one feature extractor on a labelled train/test pair.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalReport {
    /// What was evaluated (a run, an export, `raw pixels`, `random init`).
    pub name: String,
    /// Feature dimension.
    pub dim: usize,
    /// Train / test sizes.
    pub n_train: usize,
    /// Test size.
    pub n_test: usize,
    /// Weighted kNN (cosine, k 200, T 0.1).
    pub knn: KnnResult,
    /// Linear probe, when run.
    pub probe: Option<ProbeReport>,
}

impl EvalReport {
    /// One line for the terminal.
    pub fn summary(&self) -> String {
        let probe = self.probe.as_ref().map_or(String::new(), |p| {
            format!(
                ", linear probe top-1 {:.2} % (best {:.2} % at epoch {})",
                100.0 * p.final_top1,
                100.0 * p.best_top1,
                p.best_epoch
            )
        });
        format!(
            "{}: kNN top-1 {:.2} %{probe} ({} train / {} test, {}-d)",
            self.name,
            100.0 * self.knn.top1,
            self.n_train,
            self.n_test,
            self.dim
        )
    }
}

/// kNN, and the linear probe when `probe_epochs > 0`.
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    name: &str,
    train: &[f32],
    train_labels: &[u32],
    test: &[f32],
    test_labels: &[u32],
    dim: usize,
    probe_epochs: usize,
    seed: u64,
) -> anyhow::Result<EvalReport> {
    let tr = LabeledFeatures::new(train, train_labels, dim, "train")?;
    let te = LabeledFeatures::new(test, test_labels, dim, "test")?;
    let knn = knn_classify(tr, te, &KnnConfig::default())?;
    let probe = if probe_epochs > 0 {
        let config = ProbeConfig {
            epochs: probe_epochs,
            seed,
            ..Default::default()
        };
        Some(linear_probe(tr, te, &config)?)
    } else {
        None
    };
    Ok(EvalReport {
        name: name.to_string(),
        dim,
        n_train: train_labels.len(),
        n_test: test_labels.len(),
        knn,
        probe,
    })
}
