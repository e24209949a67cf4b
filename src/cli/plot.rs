//! `edgessl plot`: figures from a training log (JSONL written by `edgessl pretrain`).

use crate::monitor::{read_jsonl, write_csv};
use crate::plot::{ImageFormat, plot_training_log};
use std::io::Write;
use std::path::PathBuf;

/// Options of `edgessl plot`.
#[derive(Debug, clap::Args)]
pub struct PlotArgs {
    /// Training log (JSON lines).
    pub log: PathBuf,
    /// Output folder for the figures.
    #[arg(long, default_value = "plots")]
    pub out: PathBuf,
    /// Image format.
    #[arg(long, value_enum, default_value_t = ImageFormat::Png)]
    pub format: ImageFormat,
    /// Step whose eigenvalue spectra to draw (default: the last logged spectrum).
    #[arg(long)]
    pub step: Option<u64>,
    /// Also export the scalar columns as `log.csv` in the output folder.
    #[arg(long)]
    pub csv: bool,
}

/// Plot a training log.
pub fn run(args: PlotArgs) -> anyhow::Result<()> {
    let records = read_jsonl(&args.log)?;
    let mut out = std::io::stdout().lock();
    let files = plot_training_log(&records, &args.out, args.format, args.step)?;
    if args.csv {
        let path = args.out.join("log.csv");
        write_csv(&records, &path)?;
        writeln!(out, "wrote {}", path.display())?;
    }
    for f in files {
        writeln!(out, "wrote {}", f.display())?;
    }
    Ok(())
}
