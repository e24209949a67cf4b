//! `edgessl data`: fetch public datasets into the cache, inspect what a data source holds, and
//! preview augmented view pairs as a picture.

use crate::data::augment::{AugmentConfig, PRESETS};
use crate::data::fetch::{self, VTEST_DECODED_SIZE};
use crate::data::{DataArgs, Frame, default_cache_dir, open_source};
use anyhow::Context;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Options of `edgessl data`.
#[derive(Debug, clap::Args)]
pub struct DataCommandArgs {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DataCommand {
    /// Fetch a public dataset into the cache folder ($EDGESSL_CACHE or ./.cache/edgessl).
    Fetch(FetchArgs),
    /// Open a data source and report what it holds: frames, sizes, labels, unreadable files.
    Inspect(Box<InspectArgs>),
    /// Write a PNG of augmented view pairs (original | view 1 | view 2 per row).
    Preview(Box<PreviewArgs>),
}

/// What `edgessl data fetch` can fetch.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FetchTarget {
    /// Fashion-MNIST (Debian package dataset-fashion-mnist): 60k + 10k 28x28 gray images.
    FashionMnist,
    /// OpenCV's vtest.avi walking-people clip (Debian opencv-doc), decoded to raw gray8 with
    /// ffmpeg when it is installed.
    Vtest,
}

#[derive(Debug, clap::Args)]
struct FetchArgs {
    /// Dataset to fetch.
    #[arg(value_enum)]
    dataset: FetchTarget,
    /// Cache folder [default: $EDGESSL_CACHE or ./.cache/edgessl].
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct InspectArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Stop after this many frames (streams are endless).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Cache folder [default: $EDGESSL_CACHE or ./.cache/edgessl].
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct PreviewArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Augmentation preset.
    #[arg(long, value_name = "PRESET", default_value = "fashion28", value_parser = clap::builder::PossibleValuesParser::new(PRESETS))]
    augment: String,
    /// Trunk input channels, if different from the preset's (1 or 3).
    #[arg(long, value_name = "C")]
    channels: Option<usize>,
    /// Number of frames (rows).
    #[arg(long, value_name = "N", default_value_t = 8)]
    count: usize,
    /// Augmentation seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output PNG.
    #[arg(long, value_name = "PNG", default_value = "views.png")]
    out: PathBuf,
    /// Cache folder [default: $EDGESSL_CACHE or ./.cache/edgessl].
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
}

/// Runs an `edgessl data` subcommand.
pub fn run(args: DataCommandArgs) -> anyhow::Result<()> {
    match args.command {
        DataCommand::Fetch(a) => fetch_dataset(a),
        DataCommand::Inspect(a) => inspect(*a),
        DataCommand::Preview(a) => preview(*a),
    }
}

fn fetch_dataset(args: FetchArgs) -> anyhow::Result<()> {
    let cache = args.cache.unwrap_or_else(default_cache_dir);
    match args.dataset {
        FetchTarget::FashionMnist => {
            let dir = fetch::ensure_fashion_mnist(&cache)?;
            println!("Fashion-MNIST ready in {}", dir.display());
            println!("(it is the default: edgessl pretrain uses it when --data is not given)");
        }
        FetchTarget::Vtest => {
            let avi = fetch::ensure_vtest(&cache)?;
            println!("vtest.avi ready: {}", avi.display());
            let (w, h) = VTEST_DECODED_SIZE;
            let raw = fetch::decode_to_gray8(&avi, w, h)?;
            println!("decoded: {}", raw.display());
            println!(
                "use it with: --stream {} --stream-format gray8 --stream-size {w}x{h}",
                raw.display()
            );
        }
    }
    Ok(())
}

fn inspect(args: InspectArgs) -> anyhow::Result<()> {
    let cache = args.cache.unwrap_or_else(default_cache_dir);
    let mut source = open_source(&args.data, &cache)?;
    println!("source: {}", source.describe());
    let limit = args.limit.unwrap_or(usize::MAX);
    let (mut count, mut sizes, mut labels) = (0usize, BTreeMap::new(), BTreeMap::new());
    let mut unlabelled = 0usize;
    while count < limit {
        let Some(frame) = source.next_frame()? else {
            break;
        };
        count += 1;
        *sizes
            .entry((frame.width, frame.height, frame.channels))
            .or_insert(0usize) += 1;
        match frame.label {
            Some(l) => *labels.entry(l).or_insert(0usize) += 1,
            None => unlabelled += 1,
        }
    }
    println!("frames: {count}");
    for ((w, h, c), n) in &sizes {
        println!("  {w}x{h}x{c}: {n}");
    }
    if !labels.is_empty() {
        let per: Vec<String> = labels.iter().map(|(l, n)| format!("{l}:{n}")).collect();
        println!("labels: {} classes ({})", labels.len(), per.join(" "));
    }
    if unlabelled > 0 {
        println!("unlabelled: {unlabelled}");
    }
    if source.skipped() > 0 {
        println!("skipped unreadable: {}", source.skipped());
    }
    Ok(())
}

fn preview(args: PreviewArgs) -> anyhow::Result<()> {
    let cache = args.cache.unwrap_or_else(default_cache_dir);
    let mut augment = AugmentConfig::preset(&args.augment)?;
    if let Some(c) = args.channels {
        augment = augment.with_channels(c);
    }
    augment.validate()?;
    let mut source = open_source(&args.data, &cache)?;
    let mut frames: Vec<Frame> = Vec::new();
    while frames.len() < args.count {
        let Some(f) = source.next_frame()? else { break };
        frames.push(f);
    }
    anyhow::ensure!(!frames.is_empty(), "{}: no frames", source.describe());
    let s = augment.size;
    // Small views are hard to judge: blow them up to about 96 px.
    let zoom = (96 / s).max(1);
    let (cell, gap) = (s * zoom, 4);
    let (width, height) = (3 * cell + 4 * gap, frames.len() * (cell + gap) + gap);
    let mut canvas =
        image::RgbImage::from_pixel(width as u32, height as u32, image::Rgb([40, 40, 40]));
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(args.seed);
    let per = augment.sample_len();
    let (mut original, mut first, mut second) = (vec![0f32; per], vec![0f32; per], vec![0f32; per]);
    for (row, frame) in frames.iter().enumerate() {
        augment.eval_into(frame, &mut original);
        augment.two_views(frame, &mut rng, &mut first, &mut second);
        let views = [&original, &first, &second];
        for (col, view) in views.iter().enumerate() {
            let (x0, y0) = (gap + col * (cell + gap), gap + row * (cell + gap));
            for y in 0..cell {
                for x in 0..cell {
                    let i = (y / zoom) * s + x / zoom;
                    let px: [u8; 3] = std::array::from_fn(|c| {
                        let ch = if augment.channels == 1 { 0 } else { c };
                        let v = view[ch * s * s + i] * augment.std[ch] + augment.mean[ch];
                        (v.clamp(0.0, 1.0) * 255.0).round() as u8
                    });
                    canvas.put_pixel((x0 + x) as u32, (y0 + y) as u32, image::Rgb(px));
                }
            }
        }
    }
    canvas
        .save(&args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!(
        "wrote {} ({} frames of {}: original | view 1 | view 2, preset {})",
        args.out.display(),
        frames.len(),
        source.describe(),
        augment.name
    );
    Ok(())
}
