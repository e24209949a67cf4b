//! One measured point of a simulation and its CSV form.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

/// Norms and alignment of the linear model at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceRow {
    /// Integration step.
    pub step: usize,
    /// Time `step · dt`.
    pub t: f64,
    /// `‖W‖_F`.
    pub norm_w: f64,
    /// `‖Wa‖_F`.
    pub norm_wa: f64,
    /// `‖Wp‖_F`.
    pub norm_wp: f64,
    /// `‖[F, Wp]‖_F` with `F = W X Wᵀ`.
    pub commutator: f64,
    /// `‖[F, Wp]‖_F / (‖F‖_F ‖Wp‖_F)` (0 when either is zero).
    pub relative_commutator: f64,
    /// `p_j = u_jᵀ Wp u_j` for the eigenvectors `u_j` of F, leading mode first (optional).
    pub mode_p: Option<Vec<f64>>,
    /// Eigenvalues `s_j` of F, largest first (optional).
    pub mode_s: Option<Vec<f64>>,
}

/// Writes a trace as CSV: `step,t,norm_w,norm_wa,norm_wp,commutator,relative_commutator`, then
/// `p_0.., s_0..` when the rows carry per-mode values.
pub fn write_trace_csv(rows: &[TraceRow], path: &Path) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let modes = rows
        .first()
        .and_then(|r| r.mode_p.as_ref())
        .map_or(0, Vec::len);
    write!(
        out,
        "step,t,norm_w,norm_wa,norm_wp,commutator,relative_commutator"
    )?;
    for j in 0..modes {
        write!(out, ",p_{j}")?;
    }
    for j in 0..modes {
        write!(out, ",s_{j}")?;
    }
    writeln!(out)?;
    for r in rows {
        write!(
            out,
            "{},{},{},{},{},{},{}",
            r.step, r.t, r.norm_w, r.norm_wa, r.norm_wp, r.commutator, r.relative_commutator
        )?;
        for v in r
            .mode_p
            .iter()
            .flatten()
            .chain(r.mode_s.iter().flatten())
            .take(2 * modes)
        {
            write!(out, ",{v}")?;
        }
        writeln!(out)?;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))
}
