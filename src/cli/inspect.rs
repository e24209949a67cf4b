//! `edgessl inspect FILE`: say what an edgessl or safetensors file holds and whether it
//! verifies.

use std::path::PathBuf;

/// Options of `edgessl inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// A checkpoint, encoder export (.edgessl) or .safetensors file.
    pub file: PathBuf,
}

/// Print the description of the file; a damaged file is described, not an error, but exits
/// non-zero so scripts can check integrity.
pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let description = crate::export::describe(&args.file)?;
    print!("{}", description.text);
    if !description.verifies {
        anyhow::bail!("{}: does not verify", args.file.display());
    }
    Ok(())
}
