//! A folder of numbered checkpoints: save, keep the last K, and resume from the newest one that
//! verifies.
//!
//! Files are named `ckpt-<step:010>.edgessl` so a plain `ls` sorts them by step. The store
//! assumes a single writing process per folder.

use super::atomic::{remove_stale_temp_files, sync_dir};
use super::container::{PayloadKind, read_file, write_file};
use super::error::CheckpointError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fs;
use std::path::{Path, PathBuf};

const PREFIX: &str = "ckpt-";
const SUFFIX: &str = ".edgessl";

/// One checkpoint file found in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointEntry {
    /// Training step the checkpoint was taken at.
    pub step: u64,
    /// Its path.
    pub path: PathBuf,
}

/// A checkpoint that was loaded and verified.
#[derive(Debug)]
pub struct Loaded<T> {
    /// Training step it was taken at.
    pub step: u64,
    /// Its path.
    pub path: PathBuf,
    /// The decoded payload.
    pub value: T,
}

/// A newer checkpoint that [`CheckpointStore::latest_valid`] had to pass over.
#[derive(Debug)]
pub struct SkippedCheckpoint {
    /// Its step.
    pub step: u64,
    /// Why it was skipped (names the file).
    pub error: CheckpointError,
}

/// The outcome of looking for a checkpoint to resume from.
#[derive(Debug)]
pub struct Recovery<T> {
    /// The newest checkpoint that verified, if any.
    pub loaded: Option<Loaded<T>>,
    /// Newer checkpoints that failed to verify or decode, newest first. Non-empty means steps
    /// were lost beyond the last checkpoint interval: surface it to the user.
    pub skipped: Vec<SkippedCheckpoint>,
}

impl<T> Recovery<T> {
    /// The loaded checkpoint's path and value, dropping the step and the skipped list (log or
    /// show `skipped` first if it matters to the caller).
    pub fn into_path_and_value(self) -> Option<(PathBuf, T)> {
        self.loaded.map(|l| (l.path, l.value))
    }
}

/// A checkpoint folder keeping the last `keep` checkpoints.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
    keep: usize,
}

impl CheckpointStore {
    /// Open (creating if needed) a checkpoint folder that keeps the last `keep` checkpoints
    /// (at least 1). Temp files left by an interrupted save are removed here, with a warning.
    pub fn open(dir: impl Into<PathBuf>, keep: usize) -> Result<Self, CheckpointError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| CheckpointError::io(&dir, e))?;
        let removed = remove_stale_temp_files(&dir).map_err(|e| CheckpointError::io(&dir, e))?;
        for path in removed {
            tracing::warn!(path = %path.display(), "removed temp file of an interrupted save");
        }
        Ok(Self {
            dir,
            keep: keep.max(1),
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many checkpoints are kept.
    pub fn keep(&self) -> usize {
        self.keep
    }

    /// The file name used for `step`.
    pub fn file_name(step: u64) -> String {
        format!("{PREFIX}{step:010}{SUFFIX}")
    }

    /// The step of a checkpoint file name, `None` for other files (including temp files).
    pub fn parse_file_name(name: &str) -> Option<u64> {
        let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let step = digits.parse().ok()?;
        // Only the canonical spelling, so two names can never claim the same step.
        (Self::file_name(step) == name).then_some(step)
    }

    /// The path used for `step`.
    pub fn path_for(&self, step: u64) -> PathBuf {
        self.dir.join(Self::file_name(step))
    }

    /// Checkpoint files present, oldest step first. Verifies nothing.
    pub fn list(&self) -> Result<Vec<CheckpointEntry>, CheckpointError> {
        let io_err = |e| CheckpointError::io(&self.dir, e);
        let mut entries = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            if let Some(step) = Self::parse_file_name(&entry.file_name().to_string_lossy()) {
                entries.push(CheckpointEntry {
                    step,
                    path: entry.path(),
                });
            }
        }
        entries.sort_by_key(|e| e.step);
        Ok(entries)
    }

    /// Durably save `value` as the checkpoint for `step`, then delete older checkpoints beyond
    /// the last `keep`. Deletion happens only after the new file is complete and synced, so a
    /// crash at any point leaves at least the previous checkpoint. Saving a step that already
    /// exists replaces it atomically.
    ///
    /// Checkpoints with a higher step than `step` (left by a run that was resumed from an older
    /// checkpoint because they did not verify) are never deleted here, only reported; the
    /// kept count applies to `step` and the ones before it.
    pub fn save<T: Serialize + ?Sized>(
        &self,
        step: u64,
        value: &T,
    ) -> Result<PathBuf, CheckpointError> {
        let path = self.path_for(step);
        write_file(&path, PayloadKind::Checkpoint, value)?;
        self.prune(step);
        Ok(path)
    }

    /// Delete checkpoints older than `step` beyond the newest `keep - 1`. Failures are logged,
    /// not returned: the save they follow has already succeeded.
    fn prune(&self, step: u64) {
        let entries = match self.list() {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!("cannot list checkpoints to prune: {e}");
                return;
            }
        };
        let newer = entries.iter().filter(|e| e.step > step).count();
        if newer > 0 {
            tracing::warn!(
                dir = %self.dir.display(),
                "{newer} checkpoint(s) newer than step {step} remain from an earlier run"
            );
        }
        let older: Vec<_> = entries.iter().filter(|e| e.step < step).collect();
        let excess = older.len().saturating_sub(self.keep - 1);
        for entry in &older[..excess] {
            if let Err(e) = fs::remove_file(&entry.path) {
                tracing::warn!(path = %entry.path.display(), "cannot delete old checkpoint: {e}");
            }
        }
        if excess > 0 {
            // Not needed for safety (a resurrected old file is harmless), only for tidiness.
            let _ = sync_dir(&self.dir);
        }
    }

    /// Find the newest checkpoint that verifies and decodes as `T`. Newer ones that fail are
    /// skipped with a `tracing` warning each and returned in [`Recovery::skipped`]. An empty or
    /// missing-checkpoint folder gives `loaded: None`.
    pub fn latest_valid<T: DeserializeOwned>(&self) -> Result<Recovery<T>, CheckpointError> {
        let mut skipped = Vec::new();
        for entry in self.list()?.into_iter().rev() {
            match read_file::<T>(&entry.path, PayloadKind::Checkpoint) {
                Ok(value) => {
                    return Ok(Recovery {
                        loaded: Some(Loaded {
                            step: entry.step,
                            path: entry.path,
                            value,
                        }),
                        skipped,
                    });
                }
                Err(error) => {
                    tracing::warn!("skipping checkpoint at step {}: {error}", entry.step);
                    skipped.push(SkippedCheckpoint {
                        step: entry.step,
                        error,
                    });
                }
            }
        }
        Ok(Recovery {
            loaded: None,
            skipped,
        })
    }
}
