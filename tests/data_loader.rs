//! Batch loader (exact resume, epochs, streams with replay), replay reservoir (uniformity,
//! byte budget, serde) and labelled evaluation sets.

mod data_support;

use data_support::*;
use edgessl::data::augment::AugmentConfig;
use edgessl::data::cifar::CifarSource;
use edgessl::data::{BatchLoader, Frame, LabelledImages, ReplayConfig, Reservoir, ViewBatch};

/// Frames whose flat gray value encodes their index (value = 10·i).
fn numbered_frames(n: usize, size: usize) -> Vec<Frame> {
    (0..n)
        .map(|i| flat_frame(size, size, 1, (10 * i) as u8, Some(i as u32)))
        .collect()
}

/// The frame index each sample of a plain-augmented batch of numbered frames came from.
fn indices_of(batch: &ViewBatch) -> Vec<usize> {
    let per = batch.channels * batch.height * batch.width;
    batch.views[0]
        .chunks(per)
        .map(|v| (v[0] * 255.0 / 10.0).round() as usize)
        .collect()
}

fn take(loader: &mut BatchLoader, n: usize) -> Vec<ViewBatch> {
    (0..n)
        .map(|_| loader.next_batch().unwrap().expect("datasets never end"))
        .collect()
}

fn same(a: &ViewBatch, b: &ViewBatch) -> bool {
    a.batch == b.batch && a.views == b.views
}

fn dataset_loader(seed: u64, start: u64) -> BatchLoader {
    let frames = (0..37).map(|i| ramp_frame(20 + i % 3, 18, 3)).collect();
    BatchLoader::new(
        Box::new(VecSource::finite(frames)),
        AugmentConfig::cifar32(),
        8,
        seed,
        start,
        None,
    )
    .unwrap()
}

#[test]
fn same_seed_and_start_give_identical_batches_and_resume_matches_an_uninterrupted_run() {
    let mut a = dataset_loader(5, 0);
    let mut b = dataset_loader(5, 0);
    let run_a = take(&mut a, 7); // 56 samples: crosses the 37-frame epoch boundary
    let run_b = take(&mut b, 7);
    assert!(run_a.iter().zip(&run_b).all(|(x, y)| same(x, y)));
    let mut resumed = dataset_loader(5, 4);
    assert_eq!(resumed.step(), 4);
    for (t, batch) in take(&mut resumed, 3).iter().enumerate() {
        assert!(
            same(batch, &run_a[4 + t]),
            "resumed batch {} differs",
            4 + t
        );
    }
    assert_eq!(resumed.step(), 7);
    let mut other = dataset_loader(6, 0);
    assert!(!same(&take(&mut other, 1)[0], &run_a[0]));
    assert_eq!(a.dataset_len(), Some(37));
    assert_eq!(a.steps_per_epoch(), Some(5));
    let shape = &run_a[0];
    assert_eq!(
        (shape.batch, shape.channels, shape.height, shape.width),
        (8, 3, 32, 32)
    );
    assert_eq!(shape.views[0].len(), 8 * 3 * 32 * 32);
    assert!(
        a.describe().contains("37 frames") && a.describe().contains("batch 8"),
        "{}",
        a.describe()
    );
}

#[test]
fn every_epoch_visits_every_frame_once_in_a_new_order() {
    let frames = numbered_frames(12, 6);
    let mut loader = BatchLoader::new(
        Box::new(VecSource::finite(frames)),
        plain(6, 1),
        4,
        1,
        0,
        None,
    )
    .unwrap();
    let mut order = Vec::new();
    for b in take(&mut loader, 9) {
        order.extend(indices_of(&b));
    }
    let epochs: Vec<Vec<usize>> = order.chunks(12).map(|c| c.to_vec()).collect();
    for e in &epochs {
        let mut sorted = e.clone();
        sorted.sort();
        assert_eq!(sorted, (0..12).collect::<Vec<_>>());
    }
    assert_ne!(epochs[0], epochs[1], "epochs must be reshuffled");
    assert_ne!(
        epochs[0],
        (0..12).collect::<Vec<_>>(),
        "the first epoch must be shuffled"
    );
}

#[test]
fn bad_loader_settings_are_errors() {
    let frames = numbered_frames(3, 4);
    assert!(
        BatchLoader::new(
            Box::new(VecSource::finite(frames)),
            plain(4, 1),
            0,
            0,
            0,
            None
        )
        .is_err()
    );
    assert!(
        BatchLoader::new(
            Box::new(VecSource::finite(Vec::new())),
            plain(4, 1),
            2,
            0,
            0,
            None
        )
        .is_err()
    );
    let frames = numbered_frames(3, 4);
    let replay = ReplayConfig {
        budget_bytes: 1 << 20,
        fraction: 1.0,
        restore: None,
    };
    assert!(
        BatchLoader::new(
            Box::new(VecSource::stream(frames)),
            plain(4, 1),
            2,
            0,
            0,
            Some(replay)
        )
        .is_err()
    );
}

#[test]
fn a_finite_stream_ends_and_drops_its_partial_last_batch() {
    let frames = numbered_frames(10, 6);
    let mut loader = BatchLoader::new(
        Box::new(VecSource::stream(frames)),
        plain(6, 1),
        4,
        0,
        0,
        None,
    )
    .unwrap();
    assert_eq!(loader.dataset_len(), None);
    let b0 = loader.next_batch().unwrap().unwrap();
    let b1 = loader.next_batch().unwrap().unwrap();
    // Streams are read in order, no shuffling.
    assert_eq!(indices_of(&b0), vec![0, 1, 2, 3]);
    assert_eq!(indices_of(&b1), vec![4, 5, 6, 7]);
    assert!(loader.next_batch().unwrap().is_none());
    assert!(loader.next_batch().unwrap().is_none());
}

#[test]
fn stream_batches_mix_fresh_frames_with_replayed_history() {
    let frames = numbered_frames(24, 6);
    let replay = ReplayConfig {
        budget_bytes: 1 << 20,
        fraction: 0.5,
        restore: None,
    };
    let mut loader = BatchLoader::new(
        Box::new(VecSource::stream(frames)),
        plain(6, 1),
        4,
        3,
        0,
        Some(replay),
    )
    .unwrap();
    assert!(
        loader.describe().contains("replay"),
        "{}",
        loader.describe()
    );
    let first = indices_of(&loader.next_batch().unwrap().unwrap());
    assert_eq!(first, vec![0, 1, 2, 3], "nothing to replay yet: all fresh");
    let mut next_fresh = 4;
    while let Some(b) = loader.next_batch().unwrap() {
        let idx = indices_of(&b);
        // Two fresh frames in stream order, then two distinct replayed ones seen before.
        assert_eq!(&idx[..2], &[next_fresh, next_fresh + 1]);
        assert!(
            idx[2] < next_fresh && idx[3] < next_fresh && idx[2] != idx[3],
            "{idx:?}"
        );
        next_fresh += 2;
    }
    assert_eq!(next_fresh, 24);
    let snapshot = loader.replay_snapshot().unwrap();
    assert_eq!(snapshot.seen(), 24);
    assert_eq!(snapshot.len(), 24);
}

#[test]
fn a_restored_reservoir_is_replayed_from_the_first_batch() {
    let mut res = Reservoir::new(1 << 20, 0);
    for f in numbered_frames(5, 6) {
        res.insert(&f).unwrap();
    }
    let fresh: Vec<Frame> = (20..26)
        .map(|i| flat_frame(6, 6, 1, (10 * i) as u8, None))
        .collect();
    let replay = ReplayConfig {
        budget_bytes: 1 << 20,
        fraction: 0.5,
        restore: Some(res),
    };
    let mut loader = BatchLoader::new(
        Box::new(VecSource::stream(fresh)),
        plain(6, 1),
        4,
        0,
        0,
        Some(replay),
    )
    .unwrap();
    let idx = indices_of(&loader.next_batch().unwrap().unwrap());
    assert_eq!(&idx[..2], &[20, 21]);
    assert!(idx[2] < 5 && idx[3] < 5, "{idx:?}");
}

// ---------- reservoir ----------

fn tagged(i: usize) -> Frame {
    // 2 x 1 gray frame holding a 16-bit id.
    Frame {
        width: 2,
        height: 1,
        channels: 1,
        pixels: vec![(i >> 8) as u8, i as u8],
        label: None,
    }
}

#[test]
fn reservoir_keeps_a_uniform_sample_of_the_whole_stream() {
    let (n, runs, buckets) = (1000usize, 2000u64, 10usize);
    let budget = 10 * (2 + 8); // ten 2-byte frames plus their labels
    let mut counts = vec![0f64; buckets];
    for run in 0..runs {
        let mut r = Reservoir::new(budget, run);
        for i in 0..n {
            r.insert(&tagged(i)).unwrap();
        }
        assert_eq!(r.len(), 10);
        for k in 0..r.len() {
            let p = r.get(k).unwrap().pixels;
            counts[((p[0] as usize) << 8 | p[1] as usize) * buckets / n] += 1.0;
        }
    }
    // Every frame is kept with probability 10/1000: each bucket of 100 expects 2000 entries.
    let expected = runs as f64 * 10.0 / buckets as f64;
    let chi2: f64 = counts
        .iter()
        .map(|c| (c - expected).powi(2) / expected)
        .sum();
    // 9 degrees of freedom: P(chi2 > 27.9) = 0.001. A recency-biased buffer scores in the
    // thousands here (the last bucket would hold everything).
    assert!(chi2 < 27.9, "chi2 {chi2:.1}, bucket counts {counts:?}");
}

#[test]
fn reservoir_never_exceeds_its_byte_budget_and_round_trips_through_serde() {
    let budget = 50_000;
    let mut r = Reservoir::new(budget, 1);
    let frame = |i: usize| flat_frame(16, 12, 3, i as u8, Some(i as u32));
    for i in 0..500 {
        r.insert(&frame(i)).unwrap();
        assert!(
            r.allocated_bytes() <= budget,
            "{} > {budget} after {i} frames",
            r.allocated_bytes()
        );
    }
    assert_eq!(r.capacity(), budget / (16 * 12 * 3 + 8));
    assert_eq!(r.len(), r.capacity());
    assert_eq!(r.seen(), 500);
    let bytes = postcard::to_allocvec(&r).unwrap();
    let mut back: Reservoir = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, r);
    // The restored buffer continues exactly like the original (its RNG is part of the state).
    for i in 500..600 {
        assert_eq!(
            back.insert(&frame(i)).unwrap(),
            r.insert(&frame(i)).unwrap()
        );
    }
    assert_eq!(back, r);
    assert!(
        r.insert(&flat_frame(8, 8, 3, 0, None)).is_err(),
        "geometry change must be refused"
    );
    assert!(
        Reservoir::new(10, 0).insert(&frame(0)).is_err(),
        "a budget below one frame is an error"
    );
}

// ---------- labelled evaluation sets ----------

#[test]
fn labelled_images_are_normalised_unaugmented_and_split_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let labels: Vec<u8> = (0..40).map(|i| (i % 4) as u8).collect();
    std::fs::write(dir.path().join("test_batch.bin"), cifar_records(&labels)).unwrap();
    let cfg = AugmentConfig::cifar32();
    let mut src = CifarSource::open_dir(dir.path(), false).unwrap();
    let set = LabelledImages::from_source(&mut src, &cfg, None).unwrap();
    assert_eq!(
        (set.len(), set.channels, set.height, set.width, set.classes),
        (40, 3, 32, 32, 10)
    );
    assert_eq!(set.images.len(), 40 * 3 * 32 * 32);
    assert_eq!(set.labels[..5], [0, 1, 2, 3, 0]);
    // Image 2, green channel, pixel (x=4, y=9): normalised exactly, no augmentation.
    let raw = pattern_rgb(2, 4, 9)[1] as f32 / 255.0;
    let got = set.image(2)[32 * 32 + 9 * 32 + 4];
    assert!((got - (raw - cfg.mean[1]) / cfg.std[1]).abs() < 1e-4);

    let (kept, held) = set.holdout_split(0.2, 9);
    assert_eq!((kept.len(), held.len()), (32, 8));
    for class in 0..4 {
        // Stratified: 20 % of each class's 10 images.
        assert_eq!(held.labels.iter().filter(|&&l| l == class).count(), 2);
    }
    assert_eq!(set.holdout_split(0.2, 9), (kept.clone(), held.clone()));
    assert_ne!(
        set.holdout_split(0.2, 10).1,
        held,
        "another seed holds out other images"
    );
    // Disjoint and complete: every image lands in exactly one part.
    let mut all: Vec<&[f32]> = (0..kept.len())
        .map(|i| kept.image(i))
        .chain((0..held.len()).map(|i| held.image(i)))
        .collect();
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    all.dedup();
    assert_eq!(all.len(), 40);

    let limited = LabelledImages::from_source(
        &mut CifarSource::open_dir(dir.path(), false).unwrap(),
        &cfg,
        Some(5),
    )
    .unwrap();
    assert_eq!(limited.len(), 5);
}

#[test]
fn labelled_sets_need_labels() {
    let frames = vec![flat_frame(4, 4, 1, 0, None)];
    let err = LabelledImages::from_source(&mut VecSource::finite(frames), &plain(4, 1), None)
        .unwrap_err();
    assert!(err.to_string().contains("no label"), "{err}");
}
