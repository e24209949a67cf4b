//! `DataArgs` flags, `open_source` / labelled sources for every spec, the Fashion-MNIST cache,
//! and the `edgessl data` subcommand as a user runs it.

mod data_support;

use clap::Parser;
use data_support::*;
use edgessl::data::spec::FrameSize;
use edgessl::data::{
    AugmentConfig, DataArgs, DataSpec, LabelledImages, Split, StreamFormat, ensure_fashion_mnist,
    open_labelled_source, open_source,
};
use std::path::Path;
use std::process::Command;

#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    data: DataArgs,
}

fn parse(args: &[&str]) -> Result<DataArgs, clap::Error> {
    Cli::try_parse_from(std::iter::once("edgessl").chain(args.iter().copied())).map(|c| c.data)
}

fn count(source: &mut dyn edgessl::data::FrameSource) -> usize {
    let mut n = 0;
    while source.next_frame().unwrap().is_some() {
        n += 1;
    }
    n
}

#[test]
fn flags_parse_with_sensible_defaults() {
    let d = parse(&[]).unwrap();
    assert_eq!(d, DataArgs::default());
    assert_eq!(d.data, DataSpec::FashionMnist);
    assert!(d.replay_config().is_none(), "datasets need no replay");
    let s = parse(&[
        "--stream",
        "-",
        "--stream-format",
        "rgb24",
        "--stream-size",
        "64x48",
        "--stream-every",
        "3",
        "--replay-mib",
        "8",
    ])
    .unwrap();
    assert_eq!(s.stream.as_deref(), Some("-"));
    assert_eq!(s.stream_format, StreamFormat::Rgb24);
    assert_eq!(
        s.stream_size,
        Some(FrameSize {
            width: 64,
            height: 48
        })
    );
    assert_eq!(s.stream_every, 3);
    assert_eq!(s.replay_config().unwrap().budget_bytes, 8 << 20);
    let c = parse(&["--data", "cifar10:/x", "--strict-images"]).unwrap();
    assert_eq!(c.data, DataSpec::Cifar10 { dir: "/x".into() });
    assert!(c.strict_images);
    assert!(parse(&["--data", "imagenet"]).is_err());
    assert!(parse(&["--stream-size", "64"]).is_err());
    assert!(parse(&["--stream-format", "yuv420p"]).is_err());
    assert!(
        parse(&["--frames", "a", "--stream", "b"]).is_err(),
        "one source at a time"
    );
    // DataArgs lives in run configs too.
    let toml = toml::to_string(&s).unwrap();
    assert_eq!(toml::from_str::<DataArgs>(&toml).unwrap(), s);
}

#[test]
fn fashion_mnist_opens_from_the_cache_for_both_splits() {
    let cache = tempfile::tempdir().unwrap();
    write_fake_fashion_mnist(&cache.path().join("fashion-mnist"), 30, 12);
    // Files present: no fetch is attempted.
    assert_eq!(
        ensure_fashion_mnist(cache.path()).unwrap(),
        cache.path().join("fashion-mnist")
    );
    let args = DataArgs::default();
    let mut train = open_source(&args, cache.path()).unwrap();
    assert!(
        train.describe().contains("train-images"),
        "{}",
        train.describe()
    );
    assert_eq!(count(train.as_mut()), 30);
    let test = LabelledImages::load(
        &args,
        Split::Test,
        cache.path(),
        &AugmentConfig::fashion28(),
        None,
    )
    .unwrap();
    assert_eq!(
        (test.len(), test.channels, test.height, test.classes),
        (12, 1, 28, 10)
    );
}

#[test]
fn idx_specs_find_their_t10k_test_files() {
    let dir = tempfile::tempdir().unwrap();
    write_fake_fashion_mnist(dir.path(), 8, 3);
    let spec = format!(
        "idx:{},{}",
        dir.path().join("train-images-idx3-ubyte.gz").display(),
        dir.path().join("train-labels-idx1-ubyte.gz").display()
    );
    let args = parse(&["--data", &spec]).unwrap();
    assert_eq!(
        count(
            open_source(&args, Path::new("/nonexistent"))
                .unwrap()
                .as_mut()
        ),
        8
    );
    let mut test = open_labelled_source(&args, Split::Test, Path::new("/nonexistent")).unwrap();
    assert_eq!(count(test.as_mut()), 3);
    let unlabelled = parse(&[
        "--data",
        &format!(
            "idx:{}",
            dir.path().join("train-images-idx3-ubyte.gz").display()
        ),
    ])
    .unwrap();
    assert!(open_labelled_source(&unlabelled, Split::Train, dir.path()).is_err());
}

#[test]
fn every_spec_and_flag_opens_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let cifar = dir.path().join("cifar");
    std::fs::create_dir(&cifar).unwrap();
    for name in edgessl::data::cifar::TRAIN_FILES {
        std::fs::write(cifar.join(name), cifar_records(&[1, 2])).unwrap();
    }
    std::fs::write(cifar.join("test_batch.bin"), cifar_records(&[3])).unwrap();
    let stl = dir.path().join("stl");
    std::fs::create_dir(&stl).unwrap();
    std::fs::write(stl.join("unlabeled_X.bin"), stl_images(3)).unwrap();
    std::fs::write(stl.join("test_X.bin"), stl_images(2)).unwrap();
    std::fs::write(stl.join("test_y.bin"), [2u8, 5]).unwrap();
    let frames = dir.path().join("frames");
    for sub in ["train/a", "train/b", "test/a"] {
        std::fs::create_dir_all(frames.join(sub)).unwrap();
        image::GrayImage::new(4, 4)
            .save(frames.join(sub).join("x.png"))
            .unwrap();
    }
    let raw = dir.path().join("clip.gray8");
    std::fs::write(&raw, vec![0u8; 5 * 6 * 4]).unwrap();
    let cache = dir.path();
    let open_count =
        |args: &[&str]| count(open_source(&parse(args).unwrap(), cache).unwrap().as_mut());
    assert_eq!(
        open_count(&["--data", &format!("cifar10:{}", cifar.display())]),
        10
    );
    assert_eq!(
        open_count(&["--data", &format!("stl10:{}", stl.display())]),
        3
    );
    assert_eq!(open_count(&["--data", "synthetic:9"]), 9);
    assert_eq!(open_count(&["--frames", frames.to_str().unwrap()]), 3);
    assert_eq!(
        open_count(&["--stream", raw.to_str().unwrap(), "--stream-size", "6x4"]),
        5
    );
    assert_eq!(
        open_count(&[
            "--stream",
            raw.to_str().unwrap(),
            "--stream-size",
            "6x4",
            "--stream-every",
            "2"
        ]),
        3
    );

    let labelled = |args: &[&str], split| {
        count(
            open_labelled_source(&parse(args).unwrap(), split, cache)
                .unwrap()
                .as_mut(),
        )
    };
    assert_eq!(
        labelled(
            &["--data", &format!("cifar10:{}", cifar.display())],
            Split::Test
        ),
        1
    );
    assert_eq!(
        labelled(
            &["--data", &format!("stl10:{}", stl.display())],
            Split::Test
        ),
        2
    );
    assert_eq!(
        labelled(&["--frames", frames.to_str().unwrap()], Split::Train),
        2
    );
    assert_eq!(
        labelled(&["--frames", frames.to_str().unwrap()], Split::Test),
        1
    );
    assert!(labelled(&["--data", "synthetic:10"], Split::Test) > 0);

    let err = open_source(&parse(&["--stream", raw.to_str().unwrap()]).unwrap(), cache)
        .err()
        .unwrap();
    assert!(err.to_string().contains("--stream-size"), "{err}");
    let err = open_labelled_source(&parse(&["--stream", "-"]).unwrap(), Split::Test, cache)
        .err()
        .unwrap();
    assert!(err.to_string().contains("no labels"), "{err}");
}

fn edgessl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_edgessl"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn data_inspect_and_preview_work_from_the_command_line() {
    let out = edgessl(&["data", "inspect", "--data", "synthetic:25"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("frames: 25") && text.contains("32x32x3: 25") && text.contains("labels:"),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("views.png");
    let out = edgessl(&[
        "data",
        "preview",
        "--data",
        "synthetic:5",
        "--augment",
        "cifar32",
        "--count",
        "3",
        "--out",
        png.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let img = image::open(&png).unwrap();
    // 3 columns and 3 rows of 96-px cells (32 px zoomed 3x) with 4-px gaps.
    assert_eq!((img.width(), img.height()), (3 * 96 + 16, 3 * 100 + 4));

    let out = edgessl(&["data", "inspect", "--data", "cifar10:/does/not/exist"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("data_batch_1.bin"));
}

#[test]
fn a_raw_stream_piped_into_stdin_is_read_frame_by_frame() {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgessl"))
        .args([
            "data",
            "inspect",
            "--stream",
            "-",
            "--stream-format",
            "rgb24",
            "--stream-size",
            "4x2",
            "--stream-every",
            "2",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Five whole 4x2 rgb24 frames and a truncated sixth, as a killed ffmpeg would leave.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&[7u8; 5 * 24 + 10])
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("frames: 3") && text.contains("4x2x3: 3"),
        "{text}"
    );
    assert!(
        text.contains("stdin") && text.contains("1 frame in 2"),
        "{text}"
    );
}
