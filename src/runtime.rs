//! Process-wide runtime settings: thread pools.

/// Size rayon's global pool (used by the flex and ndarray backends and the data path).
/// `0` keeps the default (one thread per core). Must run before any parallel work.
pub fn set_threads(threads: usize) -> anyhow::Result<()> {
    if threads == 0 {
        return Ok(());
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|e| anyhow::anyhow!("--threads {threads}: cannot size the thread pool: {e}"))
}
