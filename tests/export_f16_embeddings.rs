//! An f16 export is about half the size of the f32 one and embeds real images the same way.

mod common;
use burn::backend::Flex;
use burn::module::AutodiffModule;
use common::*;
use edgessl::data::AugmentConfig;
use edgessl::data::folder::FolderSource;
use edgessl::data::labelled::LabelledImages;
use edgessl::export::{EncoderExport, Precision};
use edgessl::run::encoder::{ExportInfo, encoder_export, load_trunk};
use edgessl::run::features::trunk_features;
use edgessl::ssl::{Learner, PredictorKind};

#[test]
fn f16_export_is_half_the_size_and_embeds_like_f32() {
    // A trained (a few steps) compact trunk at 32 px RGB, the size of the CIFAR fixtures.
    let mut model = tiny_model();
    model.in_channels = 3;
    model.image_size = 32;
    model.width = 16;
    let device = Default::default();
    let mut learner = Learner::<B>::new(
        &model,
        &method(PredictorKind::Directpred),
        &optim(),
        3,
        &device,
    )
    .unwrap();
    let augment = AugmentConfig::cifar32();
    let mut views = edgessl::data::synthetic::SyntheticViews::new(32, 3, 8, 3);
    for _ in 0..3 {
        learner.step(&views.next_views().unwrap()).unwrap();
    }
    let encoder = learner.online().encoder.valid();
    let trunk = model.trunk_config();
    let info = ExportInfo {
        trunk: &trunk,
        trunk_name: "compact",
        augment: &augment,
        method: "directpred".into(),
        steps: 3,
        data: "synthetic".into(),
    };
    let dir = tempfile::tempdir().unwrap();
    let (p32, p16) = (
        dir.path().join("e32.edgessl"),
        dir.path().join("e16.edgessl"),
    );
    encoder_export(&encoder, false, &info, Precision::F32)
        .unwrap()
        .save(&p32)
        .unwrap();
    encoder_export(&encoder, false, &info, Precision::F16)
        .unwrap()
        .save(&p16)
        .unwrap();
    let (s32, s16) = (
        std::fs::metadata(&p32).unwrap().len(),
        std::fs::metadata(&p16).unwrap().len(),
    );
    assert!(
        s16 as f64 <= 0.52 * s32 as f64,
        "f16 {s16} B vs f32 {s32} B"
    );

    // Real CIFAR-10 images (from the foolbox wheel), embedded by both exports.
    let mut folder =
        FolderSource::open(std::path::Path::new("tests/fixtures/foolbox/cifar10"), true).unwrap();
    let images = LabelledImages::from_source(&mut folder, &augment, None).unwrap();
    assert!(images.len() >= 2);
    let t32 = load_trunk::<Flex>(&EncoderExport::load(&p32).unwrap(), &device).unwrap();
    let t16 = load_trunk::<Flex>(&EncoderExport::load(&p16).unwrap(), &device).unwrap();
    let (e32, e16) = (
        trunk_features(&t32, &images, 8, &device),
        trunk_features(&t16, &images, 8, &device),
    );
    // The f32 export reproduces the trained trunk exactly.
    let direct = trunk_features(&encoder.trunk, &images, 8, &device);
    assert_eq!(e32, direct);
    let d = trunk.out_dim();
    for i in 0..images.len() {
        let (a, b) = (&e32[i * d..(i + 1) * d], &e16[i * d..(i + 1) * d]);
        let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
        let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let cos = dot / (na * nb);
        assert!(cos >= 0.999, "image {i}: cosine {cos}");
    }
}
