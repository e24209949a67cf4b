//! Atomic file replacement: a reader (or a device rebooting mid-write) sees either the old file
//! or the complete new one under the final name, never a partial one.
//!
//! Recipe: write a temp file in the same folder (rename is only atomic within a filesystem),
//! fsync it (so the data is on disk before the name points at it), rename it over the target,
//! then fsync the folder (so the rename itself survives power loss).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Marker in temp file names; [`is_temp_file_name`] recognises it so stale temp files left by a
/// crash can be found and removed.
const TEMP_MARKER: &str = ".edgessl-tmp.";

/// Distinguishes temp files of concurrent writes within one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// True for names of this module's temp files (`.<name>.edgessl-tmp.<pid>.<clock>.<n>`).
pub fn is_temp_file_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(TEMP_MARKER)
}

/// A fresh temp file next to `path`. The name mixes pid, clock and a counter, and creation
/// retries on a clash, because embedded devices often boot with the same pids and a stale temp
/// file of an earlier boot may still carry this process's name.
fn create_temp_for(path: &Path, dir: &Path) -> io::Result<(PathBuf, File)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut attempt = 0;
    loop {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(
            ".{name}{TEMP_MARKER}{}.{nanos:x}.{n}",
            std::process::id()
        ));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 8 => attempt += 1,
            result => return result.map(|file| (tmp, file)),
        }
    }
}

/// The folder holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Replace `path` atomically with what `write` puts into a fresh file.
///
/// If `write` fails (including a serialiser failing halfway), or any step before the rename
/// does, the temp file is removed and `path` keeps its previous content. On `Ok` the new
/// content and its name are durable.
pub fn write_atomic<F>(path: &Path, write: F) -> io::Result<()>
where
    F: FnOnce(&mut File) -> io::Result<()>,
{
    let dir = parent_dir(path);
    let (tmp, mut file) = create_temp_for(path, dir)?;
    let written = write(&mut file).and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, path)) {
        // Best effort: a leftover temp file is harmless (never read, cleaned by the store).
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// Replace `path` atomically with `bytes`.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic(path, |f| io::Write::write_all(f, bytes))
}

/// Make a folder's entries (creations, renames, deletions) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    // Windows cannot open a folder as a file; NTFS journals renames itself.
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Remove temp files left in `dir` by interrupted writes; returns the paths removed.
/// Only for folders with a single writer: a concurrent writer's temp file would be removed too.
pub fn remove_stale_temp_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if is_temp_file_name(&name.to_string_lossy()) && entry.file_type()?.is_file() {
            fs::remove_file(entry.path())?;
            removed.push(entry.path());
        }
    }
    Ok(removed)
}
