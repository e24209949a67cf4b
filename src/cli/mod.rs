//! Command-line interface: one file per subcommand, each a clap `Args` struct and a `run`.

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::process::ExitCode;

pub mod bench;
pub mod data;
pub mod embed;
pub mod eval;
pub mod export;
pub mod inspect;
pub mod model_source;
pub mod plot;
pub mod pretrain;
pub mod theory;

/// On-device self-supervised pretraining of compact image encoders.
#[derive(Debug, Parser)]
#[command(name = "edgessl", version, about)]
pub struct Cli {
    /// What the heap does with freed tensor buffers: `retain` keeps them for the next step
    /// (15-20 % faster training, higher peak RSS), `release` returns them to the OS (glibc's
    /// default, lowest peak RSS). Benchmark children inherit it.
    #[arg(long, global = true, value_enum, env = "EDGESSL_HEAP", default_value_t)]
    heap: crate::runtime::HeapPolicy,
    /// Whether 3x3 stride-1 convolutions on maps of 12x12 and more (8x8 with 128 channels)
    /// run as Winograd F(2x2, 3x3) (x86-64 CPUs with AVX2: fewer multiplications, ~6-11 %
    /// faster steps on the 28 px trunk); `false` keeps every convolution a direct sum (the
    /// same bits as edgessl before it). Benchmark children inherit it.
    #[arg(long, global = true, env = "EDGESSL_WINOGRAD", default_value_t = true, action = clap::ArgAction::Set)]
    winograd: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Pretrain an encoder with BYOL, SimSiam, DirectPred or DirectCopy.
    Pretrain(pretrain::PretrainArgs),
    /// kNN and linear-probe accuracy of an encoder (or of the raw-pixel / random baselines).
    Eval(eval::EvalArgs),
    /// Export the trained encoder (postcard f32/f16, or safetensors with PyTorch names).
    Export(export::ExportArgs),
    /// Write embeddings of images or a frame stream with a trained encoder.
    Embed(embed::EmbedArgs),
    /// What a checkpoint or export holds, and whether it verifies.
    Inspect(inspect::InspectArgs),
    /// Fetch datasets, inspect data sources, preview augmentations.
    Data(data::DataCommandArgs),
    /// Simulate the paper's linear model (collapse, eigenspace alignment, fixed points).
    Theory(theory::TheoryArgs),
    /// Draw figures from a training log (loss, kNN, alignment, collapse, spectra).
    Plot(plot::PlotArgs),
    /// Benchmarks: memory per method, largest batch for a budget, throughput.
    Bench(bench::BenchArgs),
}

/// Parse the command line, run the subcommand, and turn errors into a message and exit code 1.
pub fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    crate::runtime::set_heap_policy(cli.heap);
    if matches.value_source("heap") == Some(ValueSource::CommandLine) {
        // SAFETY: still single-threaded (no pool or reader thread has started yet), so no
        // other thread can read the environment concurrently.
        unsafe { std::env::set_var("EDGESSL_HEAP", cli.heap.name()) };
    }
    crate::runtime::set_winograd(cli.winograd);
    if matches.value_source("winograd") == Some(ValueSource::CommandLine) {
        // SAFETY: as above, still single-threaded.
        unsafe { std::env::set_var("EDGESSL_WINOGRAD", cli.winograd.to_string()) };
    }
    let result = match cli.command {
        Command::Pretrain(mut args) => {
            // A profile's frame source is the default only when no data flag was typed.
            let typed = |id: &str| {
                matches
                    .subcommand_matches("pretrain")
                    .is_some_and(|m| m.value_source(id) == Some(ValueSource::CommandLine))
            };
            args.use_profile_frame_source = !(typed("data") || typed("frames") || typed("stream"));
            pretrain::run(args)
        }
        Command::Data(args) => data::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Export(args) => export::run(args),
        Command::Embed(args) => embed::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Theory(args) => theory::run(args),
        Command::Plot(args) => plot::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
