//! Bad config values are clear errors that name the key, never panics.

use edgessl::config::TrainConfig;

fn err(toml: &str) -> String {
    match TrainConfig::from_toml(toml) {
        Err(e) => e,
        Ok(c) => match c.validate() {
            Err(e) => e.to_string(),
            Ok(()) => panic!("accepted a bad config:\n{toml}"),
        },
    }
}

#[test]
fn out_of_range_values_name_their_key() {
    assert!(err("[method]\nrho = -0.5").contains("method.rho"));
    assert!(err("[method]\nrho = 1.0").contains("method.rho"));
    assert!(err("[method]\neps = -0.1").contains("method.eps"));
    assert!(err("[method]\nfreq = 0").contains("method.freq"));
    assert!(err("[method]\nmomentum = 1.5").contains("method.momentum"));
    assert!(err("[optim]\nlr = 0").contains("optim.lr"));
    assert!(err("[train]\nbatch = 1").contains("train.batch"));
    assert!(err("[model]\nin_channels = 2").contains("model.in_channels"));
    assert!(err("[model]\ndim = 0").contains("model.dim"));
}

#[test]
fn mismatched_dims_are_refused() {
    // The compact trunk halves the resolution twice: 6 px cannot go through it.
    assert!(err("[model]\nimage_size = 6").contains("model.image_size"));
    // ResNet-18 downsamples 8x.
    assert!(err("[model]\ntrunk = \"resnet18\"\nimage_size = 12").contains("model.image_size"));
    // `symmetric` belongs to the linear predictor.
    assert!(err("[method]\npredictor = \"mlp\"\nsymmetric = true").contains("method.symmetric"));
}

#[test]
fn unknown_methods_and_keys_are_parse_errors() {
    let e = err("[method]\npredictor = \"contrastive\"");
    assert!(
        e.contains("unknown variant") && e.contains("directpred"),
        "{e}"
    );
    let e = err("[method]\nrhoo = 0.3");
    assert!(e.contains("rhoo"), "{e}");
    let e = err("[optim]\nlr = \"fast\"");
    assert!(e.contains("lr"), "{e}");
}

#[test]
fn defaults_are_the_reference_values_and_round_trip() {
    let c = TrainConfig::default();
    c.validate().unwrap();
    assert_eq!(
        (c.method.rho(), c.method.eps(), c.method.freq),
        (0.3, 0.1, 1)
    );
    assert_eq!(
        (c.optim.lr, c.optim.momentum, c.optim.weight_decay),
        (0.03, 0.9, 4e-4)
    );
    assert_eq!(c.method.momentum, 0.996);
    assert_eq!(TrainConfig::from_toml(&c.to_toml()).unwrap(), c);
    for preset in [
        "models/compact-fashion28.toml",
        "models/resnet18-cifar32.toml",
    ] {
        TrainConfig::load(std::path::Path::new(preset))
            .unwrap()
            .validate()
            .unwrap();
    }
}

#[test]
fn a_missing_config_file_names_the_file() {
    let e = TrainConfig::load(std::path::Path::new("no/such/config.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no/such/config.toml"), "{e}");
}
