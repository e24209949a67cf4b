//! Augmentation pipeline: shapes, value ranges, determinism, and the crop/flip statistics.

mod data_support;

use data_support::*;
use edgessl::data::augment::{AugmentConfig, ColorJitter, PRESETS, sample_crop};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

fn rng(seed: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed)
}

fn views(cfg: &AugmentConfig, frame: &edgessl::data::Frame, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let (mut a, mut b) = (vec![0.0; cfg.sample_len()], vec![0.0; cfg.sample_len()]);
    cfg.two_views(frame, &mut rng(seed), &mut a, &mut b);
    (a, b)
}

#[test]
fn every_preset_gives_two_views_of_the_right_shape_and_range() {
    for name in PRESETS {
        let cfg = AugmentConfig::preset(name).unwrap();
        // Frames of another size and channel count than the preset: resized and converted.
        for frame in [ramp_frame(40, 30, 3), ramp_frame(20, 50, 1)] {
            let (a, b) = views(&cfg, &frame, 1);
            assert_eq!(a.len(), cfg.channels * cfg.size * cfg.size, "{name}");
            for v in [&a, &b] {
                for (c, plane) in v.chunks(cfg.size * cfg.size).enumerate() {
                    let lo = (0.0 - cfg.mean[c]) / cfg.std[c] - 1e-4;
                    let hi = (1.0 - cfg.mean[c]) / cfg.std[c] + 1e-4;
                    assert!(
                        plane.iter().all(|x| x.is_finite() && (lo..=hi).contains(x)),
                        "{name}"
                    );
                }
            }
            assert_ne!(a, b, "{name}: the two views of a pair must differ");
        }
    }
}

#[test]
fn same_seed_same_views_different_seed_different_views() {
    let frame = ramp_frame(32, 32, 3);
    for name in PRESETS {
        let cfg = AugmentConfig::preset(name).unwrap();
        assert_eq!(views(&cfg, &frame, 7), views(&cfg, &frame, 7), "{name}");
        assert_ne!(views(&cfg, &frame, 7), views(&cfg, &frame, 8), "{name}");
    }
}

#[test]
fn plain_recipe_is_the_identity_and_eval_view_normalises() {
    let frame = ramp_frame(8, 8, 3);
    let cfg = plain(8, 3);
    let (a, _) = views(&cfg, &frame, 0);
    for c in 0..3 {
        for y in 0..8 {
            for x in 0..8 {
                let want = frame.pixels[(y * 8 + x) * 3 + c] as f32 / 255.0;
                assert!((a[c * 64 + y * 8 + x] - want).abs() < 1e-5);
            }
        }
    }
    let fashion = AugmentConfig::fashion28();
    let flat = flat_frame(28, 28, 1, 255, None);
    let mut out = vec![0.0; fashion.sample_len()];
    fashion.eval_into(&flat, &mut out);
    let want = (1.0 - 0.2860) / 0.3530;
    assert!(out.iter().all(|v| (v - want).abs() < 1e-4));
}

#[test]
fn gray_frames_replicate_on_colour_trunks_and_colour_frames_become_luma_on_gray_trunks() {
    let gray = ramp_frame(8, 8, 1);
    let (a, _) = views(&plain(8, 3), &gray, 0);
    assert_eq!(a[..64], a[64..128]);
    assert_eq!(a[..64], a[128..]);
    let red = edgessl::data::Frame {
        width: 4,
        height: 4,
        channels: 3,
        pixels: [200u8, 0, 0].repeat(16),
        label: None,
    };
    let (l, _) = views(&plain(4, 1), &red, 0);
    let luma = (0.299f32 * 200.0).round() / 255.0;
    assert!(l.iter().all(|v| (v - luma).abs() < 1e-3), "{l:?}");
}

#[test]
fn flip_rate_matches_its_probability() {
    let frame = ramp_frame(16, 16, 1);
    let mut cfg = plain(16, 1);
    cfg.flip_p = 0.5;
    let (straight, _) = views(&plain(16, 1), &frame, 0);
    let trials = 2000;
    let mut flips = 0;
    let mut r = rng(99);
    let mut out = vec![0.0; cfg.sample_len()];
    for _ in 0..trials {
        cfg.augment_into(&frame, &mut r, &mut out);
        if out != straight {
            // A flipped view is the straight one mirrored, nothing else.
            let mirrored: Vec<f32> = out
                .chunks(16)
                .flat_map(|row| row.iter().rev().copied())
                .collect();
            assert_eq!(mirrored, straight);
            flips += 1;
        }
    }
    // Binomial(2000, 0.5): sd ≈ 22.4; 4 sd tolerance.
    assert!(
        (flips as f64 - 1000.0).abs() < 90.0,
        "{flips} flips in {trials}"
    );
    cfg.flip_p = 0.0;
    cfg.augment_into(&frame, &mut r, &mut out);
    assert_eq!(out, straight);
}

#[test]
fn crop_area_and_ratio_follow_the_configured_ranges() {
    let mut r = rng(3);
    let (scale, ratio) = ([0.08f32, 0.5], [3.0f32 / 4.0, 4.0 / 3.0]);
    let n = 4000;
    let mut fractions = Vec::with_capacity(n);
    for _ in 0..n {
        let c = sample_crop(200, 200, scale, ratio, &mut r);
        let frac = c.width * c.height / 40000.0;
        let aspect = c.width / c.height;
        assert!(frac > 0.075 && frac < 0.51, "{frac}");
        assert!(aspect > 0.74 && aspect < 1.35, "{aspect}");
        assert!(
            c.left >= 0.0 && c.top >= 0.0 && c.left + c.width <= 200.0 && c.top + c.height <= 200.0
        );
        fractions.push(frac as f64);
    }
    // With no rejections possible here, the area fraction is uniform on [0.08, 0.5]:
    // mean 0.29 (sd of the mean ≈ 0.002) and a quarter of the mass in each quarter range.
    let mean = fractions.iter().sum::<f64>() / n as f64;
    assert!((mean - 0.29).abs() < 0.01, "mean area fraction {mean}");
    let below = fractions.iter().filter(|&&f| f < 0.185).count() as f64 / n as f64;
    assert!((below - 0.25).abs() < 0.03, "{below}");
    // The fashion28 range: crops never smaller than 30 % of the frame.
    let f = AugmentConfig::fashion28();
    for _ in 0..1000 {
        let c = sample_crop(28, 28, f.crop_scale, f.crop_ratio, &mut r);
        assert!(c.width * c.height >= 0.28 * 784.0);
    }
}

#[test]
fn grayscale_and_jitter_act_when_enabled() {
    let frame = ramp_frame(16, 16, 3);
    let mut cfg = plain(16, 3);
    cfg.grayscale_p = 1.0;
    let (g, _) = views(&cfg, &frame, 0);
    assert_eq!(g[..256], g[256..512]);
    let mut cfg = plain(16, 1);
    cfg.jitter = ColorJitter {
        brightness: 0.4,
        contrast: 0.0,
        saturation: 0.0,
        hue: 0.0,
        p: 1.0,
    };
    let flat = flat_frame(16, 16, 1, 100, None);
    let mut seen = Vec::new();
    for seed in 0..200 {
        let (v, _) = views(&cfg, &flat, seed);
        let factor = v[0] / (100.0 / 255.0);
        assert!((0.6 - 1e-4..=1.4 + 1e-4).contains(&factor), "{factor}");
        seen.push(factor);
    }
    let (lo, hi) = seen
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    assert!(
        lo < 0.7 && hi > 1.3,
        "brightness factors {lo}..{hi} do not span the range"
    );
}

#[test]
fn blur_smooths_an_edge_and_solarize_inverts_bright_pixels() {
    let mut cfg = plain(32, 3);
    cfg.blur = Some(edgessl::data::augment::GaussianBlur {
        kernel: 9,
        sigma: [2.0, 2.0],
        p: 1.0,
    });
    let edge = edgessl::data::Frame {
        width: 32,
        height: 32,
        channels: 3,
        pixels: (0..32 * 32)
            .flat_map(|i| if i % 32 < 16 { [0u8; 3] } else { [255u8; 3] })
            .collect(),
        label: None,
    };
    let (b, _) = views(&cfg, &edge, 0);
    assert!(
        b[15] > 0.1 && b[16] < 0.9,
        "edge not blurred: {} {}",
        b[15],
        b[16]
    );
    let mut cfg = plain(4, 1);
    cfg.solarize = Some(edgessl::data::augment::Solarize {
        threshold: 0.5,
        p: 1.0,
    });
    let (s, _) = views(&cfg, &flat_frame(4, 4, 1, 255, None), 0);
    assert!(s.iter().all(|v| v.abs() < 1e-6));
}

#[test]
fn invalid_configs_are_rejected() {
    let mut cfg = AugmentConfig::cifar32();
    cfg.crop_scale = [0.5, 0.1];
    assert!(cfg.validate().is_err());
    let mut cfg = AugmentConfig::cifar32();
    cfg.mean = vec![0.5];
    assert!(cfg.validate().is_err());
    let mut cfg = AugmentConfig::stl96();
    cfg.blur.as_mut().unwrap().kernel = 8;
    assert!(cfg.validate().is_err());
}
