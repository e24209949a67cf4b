//! The `--profile-ops` tables: a recorded [`StepProfile`] per phase and op, and per layer.

use super::table::Table;
use crate::step_profile::{KernelSum, StepProfile};

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

/// The ceilings the profile's rates are put against: the sgemm roof for the convolutions'
/// FLOPs, the memory roof for BatchNorm's bytes ([`super::roof`]). `None`: not measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Roofs {
    /// GFLOP/s.
    pub gflops: Option<f64>,
    /// GB/s.
    pub gbs: Option<f64>,
}

/// `[rate, fraction of its roof]`: GFLOP/s where the kernel's FLOPs are counted, else GB/s
/// where its bytes are, else dashes.
fn rate_cells(k: &KernelSum, roofs: Roofs) -> [String; 2] {
    let of = |rate: f64, roof: Option<f64>| {
        roof.map_or("-".into(), |r| {
            format!("{:.0} %", 100.0 * rate / r.max(1e-9))
        })
    };
    if k.secs <= 0.0 {
        return ["-".into(), "-".into()];
    }
    if k.flops > 0.0 {
        let g = k.flops / k.secs / 1e9;
        [format!("{g:.1} GFLOP/s"), of(g, roofs.gflops)]
    } else if k.bytes > 0.0 {
        let g = k.bytes / k.secs / 1e9;
        [format!("{g:.1} GB/s"), of(g, roofs.gbs)]
    } else {
        ["-".into(), "-".into()]
    }
}

/// Phase by phase, each followed by its kernels (summed over layers) and, where kernels ran,
/// the remainder: burn's ops. Shares are of the recorded wall time; the rate is GFLOP/s for
/// the convolutions' products and GB/s for BatchNorm's traffic, each against its roof.
pub fn phase_table(p: &StepProfile, roofs: Roofs) -> Table {
    let total = p.total_secs();
    let mut t = Table::new([
        "phase / op",
        "calls/step",
        "ms/step",
        "share",
        "rate",
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
        let ops: Vec<_> = by_op.iter().filter(|o| o.key[0] == ph.phase).collect();
        for k in &ops {
            let [g, r] = rate_cells(k, roofs);
            t.row([
                format!("· {}", k.key[1]),
                per_step(k.calls, p.steps),
                ms_per_step(k.secs, p.steps),
                share(k.secs, total),
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
pub fn layer_table(p: &StepProfile, roofs: Roofs) -> Table {
    let total = p.total_secs();
    let mut t = Table::new([
        "op",
        "layer",
        "calls/step",
        "ms/step",
        "share",
        "rate",
        "of roof",
    ]);
    for k in p.by_layer() {
        let [g, r] = rate_cells(&k, roofs);
        let [op, shape] = k.key;
        t.row([
            op,
            shape,
            per_step(k.calls, p.steps),
            ms_per_step(k.secs, p.steps),
            share(k.secs, total),
            g,
            r,
        ]);
    }
    t
}

/// Both tables with headings, for a report.
pub fn render(title: &str, p: &StepProfile, roofs: Roofs) -> String {
    format!(
        "### {title}: where the step goes ({} steps)\n\n{}\n### {title}: kernels per layer\n\n{}",
        p.steps,
        phase_table(p, roofs),
        layer_table(p, roofs)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(secs: f64, flops: f64, bytes: f64) -> KernelSum {
        KernelSum {
            key: ["op".into(), "layer".into()],
            calls: 1,
            secs,
            flops,
            bytes,
        }
    }

    /// A convolution's rate is GFLOP/s against the sgemm roof, BatchNorm's GB/s against the
    /// memory roof; a kernel with neither counted, or no time, gets dashes.
    #[test]
    fn rates_are_put_against_their_own_roof() {
        let roofs = Roofs {
            gflops: Some(200.0),
            gbs: Some(40.0),
        };
        assert_eq!(
            rate_cells(&sum(0.5, 80e9, 0.0), roofs),
            ["160.0 GFLOP/s", "80 %"]
        );
        assert_eq!(
            rate_cells(&sum(0.5, 0.0, 10e9), roofs),
            ["20.0 GB/s", "50 %"]
        );
        assert_eq!(rate_cells(&sum(0.5, 0.0, 0.0), roofs), ["-", "-"]);
        assert_eq!(rate_cells(&sum(0.0, 1e9, 0.0), roofs), ["-", "-"]);
        let none = Roofs::default();
        assert_eq!(rate_cells(&sum(0.5, 0.0, 10e9), none), ["20.0 GB/s", "-"]);
    }

    #[test]
    fn calls_per_step_are_whole_unless_some_steps_made_fewer() {
        assert_eq!(per_step(18, 2), "9");
        assert_eq!(per_step(4, 150), "0.03");
        assert_eq!(per_step(3, 2), "1.50");
    }
}
