//! Runs a preset and writes its CSV traces and figures; prints a one-screen summary.

use super::modes::ModeParams;
use super::presets::{Experiment, ModeSweep, Preset};
use super::simulator::LinearSim;
use super::trace::{TraceRow, write_trace_csv};
use crate::plot::{Figure, ImageFormat, LineChart, Series};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What a preset run produced.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Files written (CSV and figures).
    pub files: Vec<PathBuf>,
    /// Human-readable result lines.
    pub summary: Vec<String>,
}

/// Runs `preset`, writing `<name>.csv` (and `<name>_summary.csv` for per-mode presets) plus a
/// figure into `out_dir`.
pub fn run_preset(preset: &Preset, out_dir: &Path, format: ImageFormat) -> Result<RunOutput> {
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("creating output folder {}", out_dir.display()))?;
    match &preset.experiment {
        Experiment::Matrix(cfg) => {
            let mut sim = LinearSim::new(cfg.clone())?;
            let rows = sim.run()?;
            let csv = out_dir.join(format!("{}.csv", preset.name));
            write_trace_csv(&rows, &csv)?;
            // Once Wa has caught up with W (τ = 1), aligned modes should sit at p*+.
            let p_plus = ModeParams {
                alpha_p: cfg.alpha_p,
                tau: 1.0,
                eta: cfg.eta,
                sigma: cfg.sigma,
            }
            .fixed_points()
            .map(|(_, pp)| pp);
            let fig =
                matrix_figure(preset.name, &rows, p_plus).save(out_dir, preset.name, format)?;
            Ok(RunOutput {
                files: vec![csv, fig],
                summary: matrix_summary(&rows),
            })
        }
        Experiment::Modes(sweep) => run_modes(preset.name, sweep, out_dir, format),
    }
}

fn matrix_figure(name: &str, rows: &[TraceRow], p_plus: Option<f64>) -> Figure {
    let pts = |f: &dyn Fn(&TraceRow) -> f64| rows.iter().map(|r| (r.t, f(r))).collect::<Vec<_>>();
    let mut panels = vec![
        LineChart::new(&format!("{name}: weight norms"), "t", "Frobenius norm")
            .with(Series::new("|W|", pts(&|r| r.norm_w)))
            .with(Series::new("|Wa|", pts(&|r| r.norm_wa)))
            .with(Series::new("|Wp|", pts(&|r| r.norm_wp))),
        LineChart::new(
            &format!("{name}: eigenspace alignment"),
            "t",
            "relative commutator",
        )
        .log_y()
        .with(Series::new(
            "|[F,Wp]| / (|F| |Wp|)",
            pts(&|r| r.relative_commutator),
        )),
    ];
    if let Some(n) = rows.first().and_then(|r| r.mode_p.as_ref()).map(Vec::len) {
        let mut chart = LineChart::new(
            &format!("{name}: Wp along F's eigenvectors"),
            "t",
            "p_j = u_j' Wp u_j",
        );
        for j in 0..n.min(8) {
            chart = chart.with(Series::new(
                format!("p_{j}"),
                rows.iter()
                    .filter_map(|r| Some((r.t, *r.mode_p.as_ref()?.get(j)?)))
                    .collect(),
            ));
        }
        if let Some(pp) = p_plus {
            let t_end = rows.last().map_or(0.0, |r| r.t);
            chart = chart.with(Series::new("p*+ (tau = 1)", vec![(0.0, pp), (t_end, pp)]));
        }
        panels.push(chart);
    }
    Figure::new(panels)
}

fn matrix_summary(rows: &[TraceRow]) -> Vec<String> {
    let (first, last) = (&rows[0], &rows[rows.len() - 1]);
    let mut out = vec![
        format!("t = {:.2} -> {:.2}", first.t, last.t),
        format!("|W|: {:.4e} -> {:.4e}", first.norm_w, last.norm_w),
        format!("|Wp|: {:.4e} -> {:.4e}", first.norm_wp, last.norm_wp),
        format!(
            "relative commutator: {:.4e} -> {:.4e}",
            first.relative_commutator, last.relative_commutator
        ),
    ];
    if let (Some(p), Some(s)) = (&last.mode_p, &last.mode_s) {
        let fmt = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.4}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        out.push(format!("final p_j: {}", fmt(p)));
        out.push(format!("final s_j: {}", fmt(s)));
    }
    out
}

/// Collapse threshold on `s` for the per-mode summary.
const COLLAPSED_S: f64 = 1e-6;

fn run_modes(
    name: &str,
    sweep: &ModeSweep,
    out_dir: &Path,
    format: ImageFormat,
) -> Result<RunOutput> {
    sweep.validate()?;
    let traj_path = out_dir.join(format!("{name}.csv"));
    let sum_path = out_dir.join(format!("{name}_summary.csv"));
    let mut traj = std::io::BufWriter::new(
        std::fs::File::create(&traj_path)
            .with_context(|| format!("creating {}", traj_path.display()))?,
    );
    let mut summ = std::io::BufWriter::new(
        std::fs::File::create(&sum_path)
            .with_context(|| format!("creating {}", sum_path.display()))?,
    );
    writeln!(traj, "eta,p0,s0,t,p,s")?;
    writeln!(
        summ,
        "eta,p0,s0,p_final,s_final,collapsed,p_minus,p_plus,critical_eta"
    )?;
    let mut summary = Vec::new();
    let mut p_chart = LineChart::new(&format!("{name}: predictor eigenvalue p(t)"), "t", "p");
    let mut s_chart = LineChart::new(&format!("{name}: F eigenvalue s(t)"), "t", "s").log_y();
    let mut drawn = 0;
    // Per η: (η, fraction of starts that survive, mean final p of the survivors).
    let mut outcome: Vec<(f64, f64, Option<f64>)> = Vec::new();
    for &eta in &sweep.etas {
        let params = ModeParams { eta, ..sweep.base };
        let fp = params.fixed_points();
        let (mut alive, mut dead, mut p_alive) = (0, 0, 0.0);
        for &(p0, s0) in &sweep.starts {
            let pts = params.simulate(p0, s0, sweep.dt, sweep.steps, sweep.record_every);
            for q in &pts {
                writeln!(traj, "{eta},{p0},{s0},{},{},{}", q.t, q.p, q.s)?;
            }
            let end = pts[pts.len() - 1];
            let collapsed = end.s < COLLAPSED_S;
            if collapsed {
                dead += 1
            } else {
                alive += 1;
                p_alive += end.p;
            }
            writeln!(
                summ,
                "{eta},{p0},{s0},{},{},{collapsed},{},{},{}",
                end.p,
                end.s,
                fp.map_or(f64::NAN, |f| f.0),
                fp.map_or(f64::NAN, |f| f.1),
                params.critical_eta()
            )?;
            // A readable figure: at most 12 trajectories.
            if drawn < 12 {
                let label = if sweep.etas.len() > 1 {
                    format!("eta {eta}, p0 {p0}, s0 {s0}")
                } else {
                    format!("p0 {p0}, s0 {s0}")
                };
                p_chart = p_chart.with(Series::new(
                    &label,
                    pts.iter().map(|q| (q.t, q.p)).collect(),
                ));
                s_chart = s_chart.with(Series::new(
                    &label,
                    pts.iter().map(|q| (q.t, q.s)).collect(),
                ));
                drawn += 1;
            }
        }
        let total = (alive + dead) as f64;
        outcome.push((
            eta,
            alive as f64 / total,
            (alive > 0).then(|| p_alive / alive as f64),
        ));
        summary.push(match fp {
            Some((pm, pp)) => format!(
                "eta {eta}: p*- = {pm:.5}, p*+ = {pp:.5}; {alive} of {} starts survive, {dead} collapse",
                alive + dead
            ),
            None => format!(
                "eta {eta} > critical {:.5}: no fixed point; {dead} of {} starts collapse",
                params.critical_eta(),
                alive + dead
            ),
        });
    }
    if let [eta] = sweep.etas[..]
        && let Some((pm, pp)) = (ModeParams { eta, ..sweep.base }).fixed_points()
    {
        let t_end = sweep.dt * sweep.steps as f64;
        for (label, v) in [("p*+ (stable)", pp), ("p*- (basin edge)", pm)] {
            p_chart = p_chart.with(Series::new(label, vec![(0.0, v), (t_end, v)]));
        }
    }
    traj.flush()?;
    summ.flush()?;
    let figure = if sweep.etas.len() > 1 {
        bifurcation_figure(name, &sweep.base, &outcome)
    } else {
        Figure::new(vec![p_chart, s_chart])
    };
    let fig = figure.save(out_dir, name, format)?;
    Ok(RunOutput {
        files: vec![traj_path, sum_path, fig],
        summary,
    })
}

/// For η sweeps: the analytic fixed points `p*±(η)` with the simulated outcome on top, and the
/// fraction of starts that survive at each η.
fn bifurcation_figure(
    name: &str,
    base: &ModeParams,
    outcome: &[(f64, f64, Option<f64>)],
) -> Figure {
    let eta_c = base.critical_eta();
    let grid: Vec<f64> = (0..=200).map(|i| eta_c * i as f64 / 200.0).collect();
    let branch = |plus: bool| -> Vec<(f64, f64)> {
        grid.iter()
            .filter_map(|&eta| {
                let (pm, pp) = ModeParams { eta, ..*base }.fixed_points()?;
                Some((eta, if plus { pp } else { pm }))
            })
            .collect()
    };
    let p_max = outcome.iter().filter_map(|o| o.2).fold(1.0f64, f64::max);
    Figure::new(vec![
        LineChart::new(&format!("{name}: fixed points vs weight decay"), "eta", "p")
            .with(Series::new("p*+ (stable, analytic)", branch(true)))
            .with(Series::new("p*- (basin edge, analytic)", branch(false)))
            .with(Series::new(
                "mean final p of surviving starts",
                outcome
                    .iter()
                    .filter_map(|&(eta, _, p)| Some((eta, p?)))
                    .collect(),
            ))
            .with(Series::new(
                format!("eta_c = {eta_c:.4}"),
                vec![(eta_c, 0.0), (eta_c, p_max)],
            )),
        LineChart::new(
            &format!("{name}: starts that do not collapse"),
            "eta",
            "fraction",
        )
        .with(Series::new(
            "surviving fraction",
            outcome.iter().map(|&(eta, f, _)| (eta, f)).collect(),
        )),
    ])
}
