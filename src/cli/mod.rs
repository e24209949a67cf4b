//! Command-line interface: one file per subcommand, each a clap `Args` struct and a `run`.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub mod bench;
pub mod pretrain;

/// On-device self-supervised pretraining of compact image encoders.
#[derive(Debug, Parser)]
#[command(name = "edgessl", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Pretrain an encoder with BYOL, SimSiam, DirectPred or DirectCopy.
    Pretrain(pretrain::PretrainArgs),
    /// Benchmarks: memory per method, largest batch for a budget, throughput.
    Bench(bench::BenchArgs),
}

/// Parse the command line, run the subcommand, and turn errors into a message and exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Pretrain(args) => pretrain::run(args),
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
