//! The `--profile-ops` tables: a recorded [`StepProfile`] per phase and op, and per layer.

use super::table::Table;
use crate::step_profile::StepProfile;

/// What a phase spends outside the recorded kernels.
const OTHER: &str = "· other: burn ops (ReLU, add, pooling, linear, loss; autodiff)";

fn ms_per_step(secs: f64, steps: u64) -> String {
    format!("{:.2}", 1e3 * secs / steps.max(1) as f64)
}

/// Calls per step: whole where every step made the same calls, else with two decimals (a
/// periodic evaluation's convolutions, say).
fn per_step(calls: u64, steps: u64) -> String {
    let steps = steps.max(1);
    if calls.is_multiple_of(steps) {
        (calls / steps).to_string()
    } else {
        format!("{:.2}", calls as f64 / steps as f64)
    }
}

fn share(secs: f64, total: f64) -> String {
    format!("{:.1} %", 100.0 * secs / total.max(1e-12))
}

fn gflops(flops: f64, secs: f64) -> Option<f64> {
    (flops > 0.0 && secs > 0.0).then(|| flops / secs / 1e9)
}

fn rate_cells(flops: f64, secs: f64, roof_gflops: Option<f64>) -> [String; 2] {
    match gflops(flops, secs) {
        None => ["-".into(), "-".into()],
        Some(g) => [
            format!("{g:.1}"),
            roof_gflops.map_or("-".into(), |r| format!("{:.0} %", 100.0 * g / r.max(1e-9))),
        ],
    }
}

/// Phase by phase, each followed by its kernels (summed over layers) and, where kernels ran,
/// the remainder: burn's ops. Shares are of the recorded wall time; GFLOP/s and the fraction
/// of `roof_gflops` are given for the convolutions' products.
pub fn phase_table(p: &StepProfile, roof_gflops: Option<f64>) -> Table {
    let total = p.total_secs();
    let mut t = Table::new([
        "phase / op",
        "calls/step",
        "ms/step",
        "share",
        "GFLOP/s",
        "of roof",
    ]);
    let by_op = p.by_op();
    for ph in &p.phases {
        t.row([
            ph.phase.clone(),
            String::new(),
            ms_per_step(ph.secs, p.steps),
            share(ph.secs, total),
            String::new(),
            String::new(),
        ]);
        let ops: Vec<_> = by_op.iter().filter(|o| o.0 == ph.phase).collect();
        for (_, op, calls, secs, flops) in &ops {
            let [g, r] = rate_cells(*flops, *secs, roof_gflops);
            t.row([
                format!("· {op}"),
                per_step(*calls, p.steps),
                ms_per_step(*secs, p.steps),
                share(*secs, total),
                g,
                r,
            ]);
        }
        if !ops.is_empty() {
            let rest = (ph.secs - p.kernel_secs(&ph.phase)).max(0.0);
            t.row([
                OTHER.into(),
                String::new(),
                ms_per_step(rest, p.steps),
                share(rest, total),
                String::new(),
                String::new(),
            ]);
        }
    }
    t.row([
        "step (all phases)".into(),
        String::new(),
        ms_per_step(total, p.steps),
        share(total, total),
        String::new(),
        String::new(),
    ]);
    t
}

/// One row per kernel and layer shape (online and target forward together).
pub fn layer_table(p: &StepProfile, roof_gflops: Option<f64>) -> Table {
    let total = p.total_secs();
    let mut t = Table::new([
        "op",
        "layer",
        "calls/step",
        "ms/step",
        "share",
        "GFLOP/s",
        "of roof",
    ]);
    for (op, shape, calls, secs, flops) in p.by_layer() {
        let [g, r] = rate_cells(flops, secs, roof_gflops);
        t.row([
            op,
            shape,
            per_step(calls, p.steps),
            ms_per_step(secs, p.steps),
            share(secs, total),
            g,
            r,
        ]);
    }
    t
}

/// Both tables with headings, for a report.
pub fn render(title: &str, p: &StepProfile, roof_gflops: Option<f64>) -> String {
    format!(
        "### {title}: where the step goes ({} steps)\n\n{}\n### {title}: kernels per layer\n\n{}",
        p.steps,
        phase_table(p, roof_gflops),
        layer_table(p, roof_gflops)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_per_step_are_whole_unless_some_steps_made_fewer() {
        assert_eq!(per_step(18, 2), "9");
        assert_eq!(per_step(4, 150), "0.03");
        assert_eq!(per_step(3, 2), "1.50");
    }
}
