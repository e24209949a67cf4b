//! Real images (tests/fixtures/foolbox: CIFAR-10 and Fashion-MNIST samples from the foolbox
//! wheel) through the folder reader, re-packed into the binary formats, and augmented.

mod data_support;

use data_support::*;
use edgessl::data::cifar::CifarSource;
use edgessl::data::folder::{FolderSource, decode_image};
use edgessl::data::idx::IdxSource;
use edgessl::data::{AugmentConfig, Frame, FrameSource, LabelledImages};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/foolbox")
}

fn drain(source: &mut dyn FrameSource) -> Vec<Frame> {
    let mut out = Vec::new();
    while let Some(f) = source.next_frame().unwrap() {
        out.push(f);
    }
    out
}

#[test]
fn real_cifar_pngs_load_with_folder_labels() {
    let mut src = FolderSource::open(&fixtures().join("cifar10"), true).unwrap();
    assert_eq!(src.class_names(), &["cat".to_string(), "ship".to_string()]);
    let frames = drain(&mut src);
    assert_eq!(frames.len(), 4);
    assert!(
        frames
            .iter()
            .all(|f| (f.width, f.height, f.channels) == (32, 32, 3))
    );
    assert_eq!(
        frames.iter().map(|f| f.label.unwrap()).collect::<Vec<_>>(),
        vec![0, 0, 1, 1]
    );
    // Real photographs: not flat, and the colour channels differ.
    let f = &frames[0];
    let (min, max) = f
        .pixels
        .iter()
        .fold((255, 0), |(a, b), &v| (a.min(v), b.max(v)));
    assert!(max - min > 100);
    assert!(f.pixels.chunks(3).any(|p| p[0] != p[2]));
}

#[test]
fn real_images_survive_a_round_trip_through_the_binary_formats() {
    let dir = tempfile::tempdir().unwrap();
    // CIFAR-10: label byte + R, G, B planes.
    let cats = drain(&mut FolderSource::open(&fixtures().join("cifar10"), true).unwrap());
    let mut batch = Vec::new();
    for f in &cats {
        batch.push(if f.label == Some(0) { 3 } else { 8 });
        for c in 0..3 {
            batch.extend(f.pixels.iter().skip(c).step_by(3));
        }
    }
    std::fs::write(dir.path().join("test_batch.bin"), &batch).unwrap();
    let back = drain(&mut CifarSource::open_dir(dir.path(), false).unwrap());
    for (a, b) in cats.iter().zip(&back) {
        assert_eq!(a.pixels, b.pixels);
    }
    assert_eq!(
        back.iter().map(|f| f.label.unwrap()).collect::<Vec<_>>(),
        vec![3, 3, 8, 8]
    );
    // Fashion-MNIST: gzipped IDX images + labels.
    let gray: Vec<Frame> = ["fashionMNIST_00_9.png", "fashionMNIST_01_2.png"]
        .iter()
        .map(|n| decode_image(&fixtures().join("fashion-mnist").join(n), None).unwrap())
        .collect();
    assert!(
        gray.iter()
            .all(|f| (f.width, f.height, f.channels) == (28, 28, 1))
    );
    let pixels: Vec<u8> = gray.iter().flat_map(|f| f.pixels.clone()).collect();
    write_idx(&dir.path().join("x.gz"), &[2, 28, 28], &pixels, true);
    write_idx(&dir.path().join("y.gz"), &[2], &[9, 2], true);
    let idx = drain(
        &mut IdxSource::open(&dir.path().join("x.gz"), Some(&dir.path().join("y.gz"))).unwrap(),
    );
    assert_eq!(idx[1].pixels, gray[1].pixels);
    assert_eq!(idx[0].label, Some(9));
}

#[test]
fn fetched_fashion_mnist_matches_the_independent_sample_when_present() {
    // foolbox's fashionMNIST_00_9.png is Fashion-MNIST test image 0. Where the real data set
    // has been fetched (`edgessl data fetch fashion-mnist`), the IDX reader must agree with it.
    let cache = std::env::var_os("EDGESSL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/edgessl"));
    let dir = cache.join("fashion-mnist");
    let (x, y) = (
        dir.join("t10k-images-idx3-ubyte.gz"),
        dir.join("t10k-labels-idx1-ubyte.gz"),
    );
    if !x.is_file() || !y.is_file() {
        eprintln!("Fashion-MNIST not fetched into {}; skipping", dir.display());
        return;
    }
    let mut src = IdxSource::open(&x, Some(&y)).unwrap();
    assert_eq!(src.len_hint(), Some(10_000));
    let first = src.next_frame().unwrap().unwrap();
    let sample = decode_image(
        &fixtures().join("fashion-mnist/fashionMNIST_00_9.png"),
        None,
    )
    .unwrap();
    assert_eq!(first.label, Some(9));
    assert_eq!(first.pixels, sample.pixels);
}

#[test]
fn real_images_augment_and_evaluate_on_gray_and_colour_trunks() {
    let frames = drain(&mut FolderSource::open(&fixtures().join("cifar10"), true).unwrap());
    let cfg = AugmentConfig::cifar32();
    let mut r = <rand_xoshiro::Xoshiro256PlusPlus as rand::SeedableRng>::seed_from_u64(0);
    let (mut a, mut b) = (vec![0.0; cfg.sample_len()], vec![0.0; cfg.sample_len()]);
    cfg.two_views(&frames[2], &mut r, &mut a, &mut b);
    assert_ne!(a, b);
    // A gray trunk (fashion28) evaluating colour photos sees their luma at 28 px.
    let gray = AugmentConfig::fashion28();
    let mut src = FolderSource::open(&fixtures().join("cifar10"), true).unwrap();
    let set = LabelledImages::from_source(&mut src, &gray, None).unwrap();
    assert_eq!(
        (set.len(), set.channels, set.height, set.classes),
        (4, 1, 28, 2)
    );
    let mean: f32 = set.image(0).iter().sum::<f32>() / 784.0;
    let luma_mean = frames[0]
        .pixels
        .chunks(3)
        .map(|p| 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32)
        .sum::<f32>()
        / 1024.0
        / 255.0;
    assert!(
        (mean * gray.std[0] + gray.mean[0] - luma_mean).abs() < 0.02,
        "{mean} vs {luma_mean}"
    );
}
