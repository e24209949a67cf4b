//! A checked, borrowed view of a labelled feature matrix.

use thiserror::Error;

/// Errors of the evaluators; each says which argument is wrong.
#[derive(Debug, Error)]
pub enum EvalError {
    /// Lengths that do not fit the stated shape.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// NaN or infinity in the named features.
    #[error("{0} features contain NaN or infinite values")]
    NonFinite(&'static str),
    /// A bad option value.
    #[error("{0}")]
    Invalid(String),
}

/// `n` feature rows of width `dim` (row-major) with one class label per row.
#[derive(Debug, Clone, Copy)]
pub struct LabeledFeatures<'a> {
    data: &'a [f32],
    labels: &'a [u32],
    dim: usize,
}

impl<'a> LabeledFeatures<'a> {
    /// Number of classes of a train/test pair (`given`, or 1 + the largest label), checking
    /// that every label is in range.
    pub fn class_count(train: Self, test: Self, given: Option<usize>) -> Result<usize, EvalError> {
        let classes = given.unwrap_or(train.num_classes().max(test.num_classes()));
        if let Some(&bad) = train
            .labels()
            .iter()
            .chain(test.labels())
            .find(|&&l| l as usize >= classes)
        {
            return Err(EvalError::Invalid(format!(
                "label {bad} is out of range for {classes} classes"
            )));
        }
        Ok(classes)
    }

    /// Checks that `data` holds `labels.len()` rows of `dim` finite values.
    /// `what` ("train", "test") names the split in errors.
    pub fn new(
        data: &'a [f32],
        labels: &'a [u32],
        dim: usize,
        what: &'static str,
    ) -> Result<Self, EvalError> {
        if dim == 0 {
            return Err(EvalError::Shape(format!("{what}: feature dimension is 0")));
        }
        if labels.is_empty() {
            return Err(EvalError::Shape(format!("{what}: no samples")));
        }
        if data.len() != labels.len() * dim {
            return Err(EvalError::Shape(format!(
                "{what}: {} labels × {dim} dims needs {} values, got {}",
                labels.len(),
                labels.len() * dim,
                data.len()
            )));
        }
        if data.iter().any(|v| !v.is_finite()) {
            return Err(EvalError::NonFinite(what));
        }
        Ok(Self { data, labels, dim })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Always false: construction rejects empty sets.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Feature width.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// All features, row-major.
    pub fn data(&self) -> &'a [f32] {
        self.data
    }

    /// All labels.
    pub fn labels(&self) -> &'a [u32] {
        self.labels
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// `1 + max label`.
    pub fn num_classes(&self) -> usize {
        self.labels
            .iter()
            .copied()
            .max()
            .map_or(0, |m| m as usize + 1)
    }
}

/// Dot product with 8 independent accumulators, so the compiler can keep them in one SIMD
/// register (a single f32 accumulator cannot be vectorised without reassociation).
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = 0.0;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    acc.iter().sum::<f32>() + tail
}
