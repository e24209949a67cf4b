//! Every frame source on files written in its real on-disk format, plus the bad-input cases.

mod data_support;

use data_support::*;
use edgessl::data::cifar::CifarSource;
use edgessl::data::folder::FolderSource;
use edgessl::data::idx::IdxSource;
use edgessl::data::stl::{StlSource, StlSplit};
use edgessl::data::stream::{RawStreamSource, StreamFormat};
use edgessl::data::{DataError, Frame, FrameSource};
use std::io::Cursor;
use std::path::Path;

fn drain(source: &mut dyn FrameSource) -> Vec<Frame> {
    let mut out = Vec::new();
    while let Some(f) = source.next_frame().unwrap() {
        out.push(f);
    }
    out
}

fn message(err: DataError) -> String {
    err.to_string()
}

// ---------- IDX ----------

#[test]
fn idx_gzipped_and_raw_files_give_the_same_labelled_frames() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = gray_images(6, 5, 4);
    for gz in [false, true] {
        let ext = if gz { ".gz" } else { "" };
        write_idx(
            &dir.path().join(format!("img{ext}")),
            &[6, 5, 4],
            &images,
            gz,
        );
        write_idx(&dir.path().join(format!("lab{ext}")), &[6], &labels, gz);
    }
    let raw = drain(
        &mut IdxSource::open(&dir.path().join("img"), Some(&dir.path().join("lab"))).unwrap(),
    );
    let mut src =
        IdxSource::open(&dir.path().join("img.gz"), Some(&dir.path().join("lab.gz"))).unwrap();
    assert_eq!(src.len_hint(), Some(6));
    assert_eq!(src.classes(), Some(6)); // labels 0..5 seen
    let gz = drain(&mut src);
    assert_eq!(raw, gz);
    assert_eq!(raw.len(), 6);
    let f = &raw[3];
    assert_eq!((f.width, f.height, f.channels, f.label), (4, 5, 1, Some(3)));
    // Row-major: pixel (x=2, y=1) of image 3.
    assert_eq!(f.pixels[4 + 2], (7 * 3 + 3 + 2) as u8);
}

#[test]
fn idx_without_labels_is_unlabelled() {
    let dir = tempfile::tempdir().unwrap();
    let (images, _) = gray_images(2, 3, 3);
    write_idx(&dir.path().join("img"), &[2, 3, 3], &images, false);
    let frames = drain(&mut IdxSource::open(&dir.path().join("img"), None).unwrap());
    assert!(frames.iter().all(|f| f.label.is_none()));
}

#[test]
fn idx_bad_header_or_size_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = gray_images(4, 3, 3);
    let bad_magic = dir.path().join("bad-magic.idx");
    std::fs::write(&bad_magic, [1u8, 2, 3, 4, 5, 6]).unwrap();
    let truncated = dir.path().join("truncated.idx");
    write_idx(&truncated, &[4, 3, 3], &images[..30], false);
    let floats = dir.path().join("floats.idx");
    std::fs::write(&floats, [0u8, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0]).unwrap();
    for path in [&bad_magic, &truncated, &floats] {
        let err = message(IdxSource::open(path, None).unwrap_err());
        assert!(err.contains(&path.display().to_string()), "{err}");
    }
    assert!(message(IdxSource::open(&truncated, None).unwrap_err()).contains("truncated"));
    let img = dir.path().join("img");
    let few = dir.path().join("few-labels");
    write_idx(&img, &[4, 3, 3], &images, false);
    write_idx(&few, &[3], &labels[..3], false);
    let err = message(IdxSource::open(&img, Some(&few)).unwrap_err());
    assert!(
        err.contains("few-labels") && err.contains("3 labels for 4 images"),
        "{err}"
    );
    let corrupt_gz = dir.path().join("corrupt.gz");
    std::fs::write(&corrupt_gz, [0x1f, 0x8b, 8, 0, 1, 2, 3]).unwrap();
    assert!(message(IdxSource::open(&corrupt_gz, None).unwrap_err()).contains("corrupt.gz"));
}

// ---------- CIFAR-10 ----------

#[test]
fn cifar_records_become_interleaved_rgb_frames_with_labels() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&nested).unwrap();
    for (k, name) in edgessl::data::cifar::TRAIN_FILES.iter().enumerate() {
        std::fs::write(nested.join(name), cifar_records(&[k as u8, 9])).unwrap();
    }
    std::fs::write(nested.join("test_batch.bin"), cifar_records(&[7])).unwrap();
    // The parent folder is accepted too (the archive unpacks into cifar-10-batches-bin).
    let mut train = CifarSource::open_dir(dir.path(), true).unwrap();
    assert_eq!(train.len_hint(), Some(10));
    let frames = drain(&mut train);
    let labels: Vec<u32> = frames.iter().map(|f| f.label.unwrap()).collect();
    assert_eq!(labels, vec![0, 9, 1, 9, 2, 9, 3, 9, 4, 9]);
    let f = &frames[1]; // record 1 of its file
    assert_eq!((f.width, f.height, f.channels), (32, 32, 3));
    for (x, y) in [(0, 0), (31, 0), (5, 17), (31, 31)] {
        let at = (y * 32 + x) * 3;
        assert_eq!(
            &f.pixels[at..at + 3],
            &pattern_rgb(1, x, y),
            "pixel ({x},{y})"
        );
    }
    let test = drain(&mut CifarSource::open_dir(&nested, false).unwrap());
    assert_eq!(test.len(), 1);
    assert_eq!(test[0].label, Some(7));
}

#[test]
fn cifar_bad_sizes_labels_and_missing_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = message(CifarSource::open_dir(dir.path(), true).unwrap_err());
    assert!(err.contains("data_batch_1.bin"), "{err}");
    let mut records = cifar_records(&[1, 2]);
    records.pop();
    std::fs::write(dir.path().join("test_batch.bin"), &records).unwrap();
    let err = message(CifarSource::open_dir(dir.path(), false).unwrap_err());
    assert!(
        err.contains("test_batch.bin") && err.contains("3073"),
        "{err}"
    );
    std::fs::write(dir.path().join("test_batch.bin"), cifar_records(&[1, 42])).unwrap();
    let err = message(CifarSource::open_dir(dir.path(), false).unwrap_err());
    assert!(
        err.contains("test_batch.bin") && err.contains("label 42"),
        "{err}"
    );
}

// ---------- STL-10 ----------

#[test]
fn stl_column_major_images_become_row_major_frames_and_labels_shift_to_zero() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("stl10_binary");
    std::fs::create_dir(&bin).unwrap();
    std::fs::write(bin.join("train_X.bin"), stl_images(3)).unwrap();
    std::fs::write(bin.join("train_y.bin"), [1u8, 10, 4]).unwrap();
    std::fs::write(bin.join("unlabeled_X.bin"), stl_images(2)).unwrap();
    let mut train = StlSource::open_dir(dir.path(), StlSplit::Train).unwrap();
    assert_eq!(train.classes(), Some(10));
    let frames = drain(&mut train);
    assert_eq!(
        frames.iter().map(|f| f.label.unwrap()).collect::<Vec<_>>(),
        vec![0, 9, 3]
    );
    let f = &frames[2];
    assert_eq!((f.width, f.height, f.channels), (96, 96, 3));
    for (x, y) in [(0, 0), (95, 0), (0, 95), (10, 60), (60, 10)] {
        let at = (y * 96 + x) * 3;
        assert_eq!(
            &f.pixels[at..at + 3],
            &pattern_rgb(2, x, y),
            "pixel ({x},{y})"
        );
    }
    let unlabeled = drain(&mut StlSource::open_dir(&bin, StlSplit::Unlabeled).unwrap());
    assert_eq!(unlabeled.len(), 2);
    assert!(unlabeled.iter().all(|f| f.label.is_none()));
    // The usual pretraining set: train (labelled) then unlabeled.
    let mut both = StlSource::open_dir(dir.path(), StlSplit::TrainUnlabeled).unwrap();
    assert_eq!(both.len_hint(), Some(5));
    let both = drain(&mut both);
    let labels: Vec<Option<u32>> = both.iter().map(|f| f.label).collect();
    assert_eq!(labels, vec![Some(0), Some(9), Some(3), None, None]);
    assert_eq!(both[4].pixels, unlabeled[1].pixels);
    assert_eq!(both[1].pixels, frames[1].pixels);
}

#[test]
fn stl_bad_sizes_and_labels_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("train_X.bin");
    let y = dir.path().join("train_y.bin");
    std::fs::write(&x, &stl_images(2)[..27648 + 100]).unwrap();
    std::fs::write(&y, [1u8, 2]).unwrap();
    let err = message(StlSource::open_files(&x, Some(&y)).unwrap_err());
    assert!(
        err.contains("train_X.bin") && err.contains("27648"),
        "{err}"
    );
    std::fs::write(&x, stl_images(2)).unwrap();
    std::fs::write(&y, [1u8, 0]).unwrap();
    let err = message(StlSource::open_files(&x, Some(&y)).unwrap_err());
    assert!(err.contains("train_y.bin") && err.contains("1-10"), "{err}");
    std::fs::write(&y, [1u8]).unwrap();
    let err = message(StlSource::open_files(&x, Some(&y)).unwrap_err());
    assert!(err.contains("1 labels for 2 images"), "{err}");
    let err = message(StlSource::open_dir(dir.path(), StlSplit::Test).unwrap_err());
    assert!(err.contains("test_X.bin"), "{err}");
}

// ---------- image folders ----------

fn save_rgb(path: &Path, w: u32, h: u32, seed: u8) {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([x as u8 * 10 + seed, y as u8 * 10, seed])
    });
    img.save(path).unwrap();
}

fn build_folder(root: &Path) {
    for d in ["cat", "dog", ".hidden", "dog/puppies"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    save_rgb(&root.join("cat/b.png"), 6, 4, 1);
    save_rgb(&root.join("cat/a.jpg"), 8, 8, 2);
    image::GrayImage::from_fn(5, 3, |x, y| image::Luma([(x + 10 * y) as u8]))
        .save(root.join("dog/c.pgm"))
        .unwrap();
    save_rgb(&root.join("dog/puppies/d.ppm"), 3, 3, 3);
    save_rgb(&root.join("loose.PNG"), 2, 2, 4);
    save_rgb(&root.join(".hidden/e.png"), 2, 2, 5);
    std::fs::write(root.join("dog/notes.txt"), "not an image").unwrap();
}

#[test]
fn folder_lists_images_recursively_sorted_with_subfolder_labels() {
    let dir = tempfile::tempdir().unwrap();
    build_folder(dir.path());
    let mut src = FolderSource::open(dir.path(), false).unwrap();
    assert_eq!(src.class_names(), &["cat".to_string(), "dog".to_string()]);
    assert_eq!(src.classes(), Some(2));
    assert_eq!(src.len_hint(), Some(5));
    let frames = drain(&mut src);
    let summary: Vec<(usize, usize, usize, Option<u32>)> = frames
        .iter()
        .map(|f| (f.width, f.height, f.channels, f.label))
        .collect();
    assert_eq!(
        summary,
        vec![
            (8, 8, 3, Some(0)), // cat/a.jpg
            (6, 4, 3, Some(0)), // cat/b.png
            (5, 3, 1, Some(1)), // dog/c.pgm, gray stays 1 channel
            (3, 3, 3, Some(1)), // dog/puppies/d.ppm, nested: label of the first-level folder
            (2, 2, 3, None),    // loose.PNG in the root: unlabelled
        ]
    );
    // PNG and PGM are lossless: exact pixels.
    assert_eq!(&frames[1].pixels[..6], &[1, 0, 1, 11, 0, 1]);
    assert_eq!(frames[2].pixels[5 + 2], 12);
    assert_eq!(src.skipped(), 0);
}

#[test]
fn corrupt_images_are_skipped_and_counted_unless_strict() {
    let dir = tempfile::tempdir().unwrap();
    build_folder(dir.path());
    std::fs::write(
        dir.path().join("cat/broken.png"),
        b"\x89PNG\r\n\x1a\nthis is not a png",
    )
    .unwrap();
    let png = std::fs::read(dir.path().join("cat/b.png")).unwrap();
    std::fs::write(dir.path().join("dog/truncated.png"), &png[..png.len() / 2]).unwrap();
    let mut lenient = FolderSource::open(dir.path(), false).unwrap();
    assert_eq!(drain(&mut lenient).len(), 5);
    assert_eq!(lenient.skipped(), 2);
    let mut strict = FolderSource::open(dir.path(), true).unwrap();
    let err = loop {
        match strict.next_frame() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("strict mode skipped a corrupt image"),
            Err(e) => break message(e),
        }
    };
    assert!(err.contains("broken.png"), "{err}");
}

#[test]
fn empty_or_missing_folders_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = message(FolderSource::open(dir.path(), false).unwrap_err());
    assert!(err.contains("no images"), "{err}");
    assert!(FolderSource::open(&dir.path().join("absent"), false).is_err());
}

// ---------- raw streams ----------

fn raw_frames(n: usize, w: usize, h: usize, c: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| (0..w * h * c).map(move |p| ((i * 31 + p) % 251) as u8))
        .collect()
}

#[test]
fn gray8_file_stream_yields_every_frame_in_order_and_every_kth() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.gray8");
    let bytes = raw_frames(7, 4, 3, 1);
    std::fs::write(&path, &bytes).unwrap();
    let p = path.to_str().unwrap();
    let mut all = RawStreamSource::open(p, StreamFormat::Gray8, 4, 3, 1).unwrap();
    assert_eq!(all.len_hint(), None); // streams are read sequentially, never loaded whole
    let frames = drain(&mut all);
    assert_eq!(frames.len(), 7);
    assert_eq!(frames[5].pixels, bytes[5 * 12..6 * 12]);
    assert_eq!(
        (frames[0].width, frames[0].height, frames[0].channels),
        (4, 3, 1)
    );
    let every3 = drain(&mut RawStreamSource::open(p, StreamFormat::Gray8, 4, 3, 3).unwrap());
    let kept: Vec<&[u8]> = every3.iter().map(|f| &f.pixels[..]).collect();
    assert_eq!(kept, vec![&bytes[0..12], &bytes[36..48], &bytes[72..84]]);
}

#[test]
fn rgb24_stream_keeps_interleaved_colour() {
    let bytes = raw_frames(3, 2, 2, 3);
    let reader = Box::new(Cursor::new(bytes.clone()));
    let frames = drain(
        &mut RawStreamSource::from_reader("pipe", reader, StreamFormat::Rgb24, 2, 2, 1).unwrap(),
    );
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[2].channels, 3);
    assert_eq!(frames[2].pixels, bytes[24..36]);
}

#[test]
fn truncated_last_frame_of_a_pipe_is_dropped() {
    let mut bytes = raw_frames(3, 4, 4, 1);
    bytes.truncate(2 * 16 + 5);
    let reader = Box::new(Cursor::new(bytes));
    let mut src =
        RawStreamSource::from_reader("pipe", reader, StreamFormat::Gray8, 4, 4, 1).unwrap();
    assert_eq!(drain(&mut src).len(), 2);
    assert!(src.next_frame().unwrap().is_none());
}

#[test]
fn stream_byte_count_that_does_not_fit_the_frame_size_is_a_clear_error() {
    // A pipe that ends before one whole frame: the size or format must be wrong.
    let reader = Box::new(Cursor::new(vec![0u8; 100]));
    let mut src =
        RawStreamSource::from_reader("stdin", reader, StreamFormat::Rgb24, 64, 48, 1).unwrap();
    let err = message(src.next_frame().unwrap_err());
    assert!(
        err.contains("stdin") && err.contains("--stream-size"),
        "{err}"
    );
    // A file whose length is no multiple of the frame size is rejected up front.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.raw");
    std::fs::write(&path, raw_frames(3, 4, 4, 3)).unwrap(); // 144 bytes of rgb24 4x4
    let err = message(
        RawStreamSource::open(path.to_str().unwrap(), StreamFormat::Gray8, 5, 5, 1)
            .err()
            .unwrap(),
    );
    assert!(
        err.contains("clip.raw") && err.contains("--stream-size"),
        "{err}"
    );
    // Bad geometry flags.
    assert!(RawStreamSource::open(path.to_str().unwrap(), StreamFormat::Gray8, 0, 4, 1).is_err());
    assert!(RawStreamSource::open(path.to_str().unwrap(), StreamFormat::Gray8, 4, 4, 0).is_err());
    assert!(
        RawStreamSource::open(
            dir.path().join("absent").to_str().unwrap(),
            StreamFormat::Gray8,
            4,
            4,
            1
        )
        .is_err()
    );
}

#[cfg(unix)]
#[test]
fn fifo_stream_is_read_as_it_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("camera.fifo");
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("mkfifo unavailable; skipping");
        return;
    }
    let bytes = raw_frames(4, 8, 6, 1);
    let writer_path = fifo.clone();
    let payload = bytes.clone();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(writer_path)
            .unwrap();
        // Frame by frame, with a partial fifth frame as a killed ffmpeg would leave.
        for chunk in payload.chunks(48) {
            f.write_all(chunk).unwrap();
            f.flush().unwrap();
        }
        f.write_all(&[1, 2, 3]).unwrap();
    });
    let mut src =
        RawStreamSource::open(fifo.to_str().unwrap(), StreamFormat::Gray8, 8, 6, 1).unwrap();
    let frames = drain(&mut src);
    writer.join().unwrap();
    assert_eq!(frames.len(), 4);
    assert_eq!(frames[3].pixels, bytes[144..192]);
}
