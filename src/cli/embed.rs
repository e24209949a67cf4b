//! `edgessl embed`: run a trained encoder on images or a frame stream and write embeddings.

use super::model_source::open_model;
use crate::backend::{BackendKind, BackendTask, run_on};
use crate::data::{DataArgs, default_cache_dir, open_source};
use crate::export::write_npy;
use anyhow::{Context, bail};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use std::io::Write;
use std::path::PathBuf;

/// Options of `edgessl embed`.
#[derive(Debug, clap::Args)]
pub struct EmbedArgs {
    /// The encoder: an export (.edgessl / .safetensors), a checkpoint, or a run folder.
    #[arg(long, value_name = "PATH")]
    pub model: PathBuf,
    /// Frames to embed.
    #[command(flatten)]
    pub data: DataArgs,
    /// Output: `.npy` (float32, n x d) or `.csv` (streamed row by row, with the label if any).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Embed at most this many frames.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Frames per forward pass.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub batch: usize,
    /// Cache folder for fetched data.
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Backend.
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
}

struct EmbedTask {
    args: EmbedArgs,
}

impl BackendTask for EmbedTask {
    type Output = anyhow::Result<()>;

    fn run<B: AutodiffBackend>(self, device: B::Device, _kind: BackendKind) -> anyhow::Result<()> {
        let args = self.args;
        let csv = args.out.extension().is_some_and(|e| e == "csv");
        let loaded = open_model(&args.model)?.load::<B>(&device)?;
        let cache = args.cache.clone().unwrap_or_else(default_cache_dir);
        let mut source = open_source(&args.data, &cache)?;
        let aug = &loaded.augment;
        let per = aug.sample_len();
        let dim = loaded.info.trunk.out_dim();
        let (c, s) = (aug.channels, aug.size);
        let mut all = Vec::new();
        let mut csv_out = if csv {
            let f = std::fs::File::create(&args.out)
                .with_context(|| format!("--out {}: cannot create", args.out.display()))?;
            let mut w = std::io::BufWriter::new(f);
            let header: Vec<String> = (0..dim).map(|j| format!("e{j}")).collect();
            writeln!(w, "label,{}", header.join(","))?;
            Some(w)
        } else {
            None
        };
        let mut n = 0usize;
        let limit = args.limit.unwrap_or(usize::MAX);
        loop {
            let mut pixels = Vec::with_capacity(args.batch * per);
            let mut labels = Vec::with_capacity(args.batch);
            while labels.len() < args.batch && n + labels.len() < limit {
                let Some(frame) = source.next_frame()? else {
                    break;
                };
                let start = pixels.len();
                pixels.resize(start + per, 0.0);
                aug.eval_into(&frame, &mut pixels[start..]);
                labels.push(frame.label);
            }
            if labels.is_empty() {
                break;
            }
            let x = Tensor::<B::InnerBackend, 4>::from_data(
                TensorData::new(pixels, [labels.len(), c, s, s]),
                &device,
            );
            let e = loaded.trunk.forward(x).into_data().convert::<f32>();
            let e = e.as_slice::<f32>().expect("f32 after convert");
            match csv_out.as_mut() {
                Some(w) => {
                    for (i, label) in labels.iter().enumerate() {
                        let row: Vec<String> = e[i * dim..(i + 1) * dim]
                            .iter()
                            .map(|v| v.to_string())
                            .collect();
                        writeln!(
                            w,
                            "{},{}",
                            label.map_or(String::new(), |l| l.to_string()),
                            row.join(",")
                        )?;
                    }
                }
                None => all.extend_from_slice(e),
            }
            n += labels.len();
        }
        if n == 0 {
            bail!("no frames to embed from {}", source.describe());
        }
        match csv_out {
            Some(mut w) => w.flush()?,
            None => write_npy(&args.out, n, dim, &all)?,
        }
        eprintln!(
            "embedded {n} frames from {} → {} ({n} x {dim})",
            source.describe(),
            args.out.display()
        );
        Ok(())
    }
}

/// Write embeddings.
pub fn run(args: EmbedArgs) -> anyhow::Result<()> {
    let backend = args.backend.unwrap_or_else(BackendKind::default_compiled);
    run_on(backend, EmbedTask { args })?
}
