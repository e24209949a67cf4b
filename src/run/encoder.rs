//! The exported encoder: trunk weights (optionally the projector) with a model card, and the
//! way back from an export to a trunk that runs.

use crate::data::AugmentConfig;
use crate::export::{EncoderExport, ModelCard, Precision, TrunkInfo};
use crate::model::named::{load_named, named_tensors};
use crate::model::{Encoder, ResidualTrunk, TrunkConfig};
use burn::module::Module;
use burn::tensor::backend::Backend;

/// Tensor-name prefix of the projector in an export that includes it.
pub const PROJECTOR_PREFIX: &str = "projector";

/// What describes an export besides its weights.
pub struct ExportInfo<'a> {
    /// The trunk's shape.
    pub trunk: &'a TrunkConfig,
    /// Trunk name (`compact`, `resnet18`).
    pub trunk_name: &'a str,
    /// How inputs are prepared (size, channels, mean/std).
    pub augment: &'a AugmentConfig,
    /// Method label.
    pub method: String,
    /// Steps trained.
    pub steps: u64,
    /// Description of the training data.
    pub data: String,
}

/// Build the export of an encoder (evaluation-mode module, e.g. `encoder.valid()`).
pub fn encoder_export<B: Backend>(
    encoder: &Encoder<B>,
    with_projector: bool,
    info: &ExportInfo,
    precision: Precision,
) -> anyhow::Result<EncoderExport> {
    let mut tensors = named_tensors(&encoder.trunk, "");
    let mut output_dim = info.trunk.out_dim();
    if with_projector {
        tensors.extend(named_tensors(&encoder.projector, PROJECTOR_PREFIX));
        output_dim = encoder.projector.fc2.weight.dims()[1];
    }
    let card = ModelCard {
        created_at_unix: ModelCard::now_unix(),
        method: info.method.clone(),
        steps: info.steps,
        data: info.data.clone(),
        input_height: info.augment.size as u32,
        input_width: info.augment.size as u32,
        channels: info.augment.channels as u32,
        mean: info.augment.mean.iter().map(|&v| v as f64).collect(),
        std: info.augment.std.iter().map(|&v| v as f64).collect(),
        output_dim: output_dim as u32,
        trunk: TrunkInfo::from_config(info.trunk_name, info.trunk)?,
        ..Default::default()
    };
    let export = EncoderExport::new(card, tensors)?;
    Ok(export.to_precision(precision)?)
}

/// The trunk shape recorded in an export's card.
pub fn trunk_config_of(card: &ModelCard) -> anyhow::Result<TrunkConfig> {
    toml::from_str(&card.trunk.config)
        .map_err(|e| anyhow::anyhow!("the model card's trunk config is not readable: {e}"))
}

/// A trunk with the export's weights, ready to embed images.
pub fn load_trunk<B: Backend>(
    export: &EncoderExport,
    device: &B::Device,
) -> anyhow::Result<ResidualTrunk<B>> {
    let config = trunk_config_of(&export.card)?;
    let tensors: Vec<_> = export
        .tensors
        .iter()
        .filter(|t| !t.name.starts_with(PROJECTOR_PREFIX))
        .map(|t| t.to_precision(Precision::F32))
        .collect::<Result<_, _>>()?;
    let trunk = config.init::<B>(device);
    load_named(trunk, &tensors, "")
        .map(|t| t.no_grad())
        .map_err(|e| anyhow::anyhow!("the export does not fit its own trunk config: {e}"))
}

/// The input preparation an export expects, from its card.
pub fn augment_of(card: &ModelCard) -> anyhow::Result<AugmentConfig> {
    let size = card.input_height as usize;
    let channels = card.channels as usize;
    let mut augment = if size == 28 && channels == 1 {
        AugmentConfig::fashion28()
    } else {
        AugmentConfig::cifar32()
            .with_channels(channels)
            .with_size(size)
    };
    augment.mean = card.mean.iter().map(|&v| v as f32).collect();
    augment.std = card.std.iter().map(|&v| v as f32).collect();
    augment.validate()?;
    Ok(augment)
}
