//! `edgessl theory`: run the paper's linear-model experiments (see docs/theory.md).

use crate::plot::ImageFormat;
use crate::theory::{Integrator, Overrides, PRESETS, preset, run_preset};
use std::io::Write;
use std::path::PathBuf;

/// Options of `edgessl theory`.
#[derive(Debug, clap::Args)]
pub struct TheoryArgs {
    /// Experiment to run (`--list` shows them all).
    #[arg(long, required_unless_present = "list")]
    pub preset: Option<String>,
    /// List the presets and exit.
    #[arg(long)]
    pub list: bool,
    /// Output folder for the CSV and the figure.
    #[arg(long, default_value = "theory-out")]
    pub out: PathBuf,
    /// Figure format.
    #[arg(long, value_enum, default_value_t = ImageFormat::Png)]
    pub format: ImageFormat,
    /// Input dimension of W.
    #[arg(long)]
    pub n1: Option<usize>,
    /// Output dimension of W (Wp is n2×n2).
    #[arg(long)]
    pub n2: Option<usize>,
    /// Relative predictor learning rate αp.
    #[arg(long, allow_negative_numbers = true)]
    pub alpha_p: Option<f64>,
    /// EMA rate β of the target.
    #[arg(long, allow_negative_numbers = true)]
    pub beta: Option<f64>,
    /// Weight decay η (per-mode presets: replaces the η list).
    #[arg(long, allow_negative_numbers = true)]
    pub eta: Option<f64>,
    /// Augmentation noise σ (X' = σ² I).
    #[arg(long, allow_negative_numbers = true)]
    pub sigma: Option<f64>,
    /// Target/online ratio τ (per-mode presets).
    #[arg(long, allow_negative_numbers = true)]
    pub tau: Option<f64>,
    /// Number of integration steps.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Integration step size.
    #[arg(long, allow_negative_numbers = true)]
    pub dt: Option<f64>,
    /// Seed of the random initial weights.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Train Wp without symmetrising its gradient (matrix presets).
    #[arg(long)]
    pub asymmetric_wp: bool,
    /// Integration scheme of the matrix presets.
    #[arg(long, value_enum)]
    pub integrator: Option<Integrator>,
}

/// Run a theory preset.
pub fn run(args: TheoryArgs) -> anyhow::Result<()> {
    // Write through a handle so a closed pipe (`| head`) is an error, not a panic.
    let mut out = std::io::stdout().lock();
    if args.list {
        for name in PRESETS {
            writeln!(out, "{name:24} {}", preset(name)?.summary)?;
        }
        return Ok(());
    }
    let name = args.preset.as_deref().unwrap_or_default();
    let mut p = preset(name)?;
    let ignored = p.apply(&Overrides {
        n1: args.n1,
        n2: args.n2,
        alpha_p: args.alpha_p,
        beta: args.beta,
        eta: args.eta,
        sigma: args.sigma,
        tau: args.tau,
        steps: args.steps,
        dt: args.dt,
        seed: args.seed,
        asymmetric_wp: args.asymmetric_wp,
        integrator: args.integrator,
    });
    if !ignored.is_empty() {
        eprintln!("warning: preset `{name}` ignores {}", ignored.join(", "));
    }
    p.validate()?;
    writeln!(out, "{}: {}", p.name, p.summary)?;
    let result = run_preset(&p, &args.out, args.format)?;
    for line in &result.summary {
        writeln!(out, "  {line}")?;
    }
    for f in &result.files {
        writeln!(out, "wrote {}", f.display())?;
    }
    Ok(())
}
