//! Checkpoint folder: keep-last-K, recovery from a corrupt newest checkpoint, stale temp files,
//! and failures in the middle of a save.

use edgessl::checkpoint::atomic::{is_temp_file_name, write_atomic};
use edgessl::checkpoint::{CheckpointStore, FormatError};
use serde::{Deserialize, Serialize, Serializer};
use std::io::Write;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct State {
    step: u64,
    weights: Vec<f32>,
}

fn state(step: u64) -> State {
    State {
        step,
        weights: (0..256).map(|i| (i as f32 + step as f32) * 0.01).collect(),
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn steps(store: &CheckpointStore) -> Vec<u64> {
    store.list().unwrap().iter().map(|e| e.step).collect()
}

#[test]
fn file_names_sort_by_step_and_parse_back() {
    assert_eq!(CheckpointStore::file_name(42), "ckpt-0000000042.edgessl");
    assert_eq!(
        CheckpointStore::parse_file_name("ckpt-0000000042.edgessl"),
        Some(42)
    );
    assert_eq!(CheckpointStore::parse_file_name("ckpt-42.edgessl"), None);
    assert_eq!(
        CheckpointStore::parse_file_name("ckpt-00000000x2.edgessl"),
        None
    );
    assert_eq!(
        CheckpointStore::parse_file_name(".ckpt-0000000042.edgessl.edgessl-tmp.1.0"),
        None
    );
    let big = CheckpointStore::file_name(12_345_678_901);
    assert_eq!(CheckpointStore::parse_file_name(&big), Some(12_345_678_901));
}

#[test]
fn keeps_the_last_k() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::open(dir.path(), 3).unwrap();
    for step in [100, 200, 300, 400, 500] {
        let path = store.save(step, &state(step)).unwrap();
        assert!(path.ends_with(CheckpointStore::file_name(step)));
    }
    assert_eq!(steps(&store), [300, 400, 500]);
    assert_eq!(
        names(dir.path()).len(),
        3,
        "no temp files or strays: {:?}",
        names(dir.path())
    );
    let rec = store.latest_valid::<State>().unwrap();
    let loaded = rec.loaded.unwrap();
    assert_eq!((loaded.step, loaded.value), (500, state(500)));
    assert!(rec.skipped.is_empty());
    // Re-saving an existing step replaces it atomically.
    store.save(500, &state(501)).unwrap();
    assert_eq!(
        store.latest_valid::<State>().unwrap().loaded.unwrap().value,
        state(501)
    );
    assert_eq!(steps(&store), [300, 400, 500]);
}

#[test]
fn corrupt_newest_is_skipped_with_a_warning_and_the_previous_returned() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::open(dir.path(), 3).unwrap();
    for step in [10, 20, 30] {
        store.save(step, &state(step)).unwrap();
    }
    // Bit rot in the newest, and a newer one truncated by a power cut during a copy.
    let p30 = store.path_for(30);
    let mut bytes = std::fs::read(&p30).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&p30, &bytes).unwrap();
    let p40 = store.path_for(40);
    std::fs::write(&p40, &bytes[..20]).unwrap();

    let rec = store.latest_valid::<State>().unwrap();
    let loaded = rec.loaded.expect("step 20 is intact");
    assert_eq!(loaded.step, 20);
    assert_eq!(loaded.value, state(20));
    assert_eq!(
        rec.skipped.iter().map(|s| s.step).collect::<Vec<_>>(),
        [40, 30]
    );
    assert!(matches!(
        rec.skipped[0].error.format_error(),
        Some(FormatError::Truncated { .. })
    ));
    assert!(matches!(
        rec.skipped[1].error.format_error(),
        Some(FormatError::ChecksumMismatch { .. })
    ));
    assert!(
        rec.skipped[1]
            .error
            .to_string()
            .contains("ckpt-0000000030.edgessl")
    );
}

#[test]
fn nothing_valid_gives_none_with_the_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::open(dir.path(), 2).unwrap();
    assert!(store.latest_valid::<State>().unwrap().loaded.is_none());
    std::fs::write(store.path_for(5), b"EDGESSL\0 but nothing else").unwrap();
    let rec = store.latest_valid::<State>().unwrap();
    assert!(rec.loaded.is_none());
    assert_eq!(rec.skipped.len(), 1);
}

#[test]
fn stale_temp_files_are_ignored_and_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = CheckpointStore::open(dir.path(), 2).unwrap();
        store.save(1, &state(1)).unwrap();
    }
    // What a power cut during the save of step 2 leaves behind.
    let stale = dir
        .path()
        .join(".ckpt-0000000002.edgessl.edgessl-tmp.4242.0");
    std::fs::write(&stale, b"EDGESSL\0partial").unwrap();
    assert!(is_temp_file_name(
        stale.file_name().unwrap().to_str().unwrap()
    ));
    std::fs::write(dir.path().join("notes.txt"), b"user file").unwrap();

    let store = CheckpointStore::open(dir.path(), 2).unwrap();
    assert!(!stale.exists(), "stale temp file removed on open");
    assert!(
        dir.path().join("notes.txt").exists(),
        "unrelated files untouched"
    );
    assert_eq!(steps(&store), [1]);
    assert_eq!(
        store.latest_valid::<State>().unwrap().loaded.unwrap().step,
        1
    );
}

/// Fails after serialising part of its data, like a crash mid-save.
struct Exploding;

impl Serialize for Exploding {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeStruct};
        let mut st = s.serialize_struct("State", 2)?;
        st.serialize_field("step", &999u64)?;
        st.serialize_field("weights", &vec![1.0f32; 50_000])?;
        Err(S::Error::custom("disk yanked"))
    }
}

#[test]
fn a_failed_save_keeps_every_older_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::open(dir.path(), 2).unwrap();
    store.save(1, &state(1)).unwrap();
    store.save(2, &state(2)).unwrap();
    let before = names(dir.path());
    assert!(store.save(3, &Exploding).is_err());
    assert_eq!(
        names(dir.path()),
        before,
        "nothing pruned, no partial or temp file"
    );
    assert_eq!(
        store.latest_valid::<State>().unwrap().loaded.unwrap().value,
        state(2)
    );
}

#[test]
fn keep_one_never_deletes_the_checkpoint_just_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::open(dir.path(), 1).unwrap();
    store.save(10, &state(10)).unwrap();
    store.save(20, &state(20)).unwrap();
    assert_eq!(steps(&store), [20]);
    // A run that restarted below step 20 (say 20 failed to verify) saves step 15: the new file
    // must survive even though 20 has a higher step; 20 is left for the user to judge.
    store.save(15, &state(15)).unwrap();
    assert_eq!(steps(&store), [15, 20]);
    store.save(16, &state(16)).unwrap();
    assert_eq!(steps(&store), [16, 20]);
}

#[test]
fn write_atomic_failure_leaves_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("model.bin");
    std::fs::write(&target, b"old and good").unwrap();
    let err = write_atomic(&target, |f| {
        f.write_all(&[0xAB; 10_000])?;
        Err(std::io::Error::other("power cut"))
    })
    .unwrap_err();
    assert_eq!(err.to_string(), "power cut");
    assert_eq!(std::fs::read(&target).unwrap(), b"old and good");
    assert_eq!(names(dir.path()), ["model.bin"]);

    write_atomic(&target, |f| f.write_all(b"new")).unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"new");
    assert_eq!(names(dir.path()), ["model.bin"]);
}

/// Collects everything a `tracing` subscriber writes.
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn skipping_a_checkpoint_logs_a_warning_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::open(dir.path(), 3).unwrap();
    store.save(1, &state(1)).unwrap();
    store.save(2, &state(2)).unwrap();
    std::fs::write(store.path_for(2), b"garbage").unwrap();

    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let rec =
        tracing::subscriber::with_default(subscriber, || store.latest_valid::<State>().unwrap());
    assert_eq!(rec.loaded.unwrap().step, 1);
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("skipping checkpoint at step 2"), "{text}");
    assert!(text.contains("ckpt-0000000002.edgessl"), "{text}");
}

/// Env var that turns `killed_writer_never_leaves_a_corrupt_checkpoint` into the child that
/// saves checkpoints in a loop until it is killed.
const CRASH_CHILD_DIR: &str = "EDGESSL_TEST_CRASH_CHILD_DIR";

#[test]
fn killed_writer_never_leaves_a_corrupt_checkpoint() {
    if let Ok(dir) = std::env::var(CRASH_CHILD_DIR) {
        // Child: resume like the trainer would, then save big checkpoints as fast as possible.
        let store = CheckpointStore::open(&dir, 2).unwrap();
        let rec = store.latest_valid::<State>().unwrap();
        let mut step = rec.loaded.map_or(0, |l| l.step);
        let mut big = state(0);
        big.weights = vec![0.5; 500_000];
        loop {
            step += 1;
            big.step = step;
            store.save(step, &big).unwrap();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut last_step = 0;
    for round in 0..6u64 {
        let mut child = std::process::Command::new(&exe)
            .args([
                "--exact",
                "killed_writer_never_leaves_a_corrupt_checkpoint",
                "--nocapture",
            ])
            .env(CRASH_CHILD_DIR, dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Kill at varying points of a save (each takes a few ms).
        std::thread::sleep(std::time::Duration::from_millis(150 + 37 * round));
        child.kill().unwrap(); // SIGKILL: no destructors, no cleanup.
        child.wait().unwrap();

        // Every file under a checkpoint name verifies; only temp files may be partial.
        let store = CheckpointStore::open(dir.path(), 2).unwrap();
        for entry in store.list().unwrap() {
            let s: State = edgessl::checkpoint::read_file(
                &entry.path,
                edgessl::checkpoint::PayloadKind::Checkpoint,
            )
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(s.step, entry.step);
        }
        let rec = store.latest_valid::<State>().unwrap();
        assert!(rec.skipped.is_empty(), "round {round}: {:?}", rec.skipped);
        if let Some(l) = rec.loaded {
            assert!(l.step >= last_step, "progress never goes backwards");
            last_step = l.step;
        }
        assert!(
            names(dir.path()).iter().all(|n| !is_temp_file_name(n)),
            "stale temp files are cleaned on open"
        );
    }
    println!("crash test: reached step {last_step} over 6 killed runs");
    assert!(last_step > 0, "the child never completed a save");
}
