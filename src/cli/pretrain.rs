//! `edgessl pretrain` (being written: the core learner lands in the next commits).

/// Options of `edgessl pretrain`.
#[derive(Debug, clap::Args)]
pub struct PretrainArgs {}

/// Run a pretraining job.
pub fn run(_args: PretrainArgs) -> anyhow::Result<()> {
    anyhow::bail!("pretrain is not wired yet")
}
