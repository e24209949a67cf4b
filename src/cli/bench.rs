//! `edgessl bench`: memory per method (measured in child processes, next to the accounting
//! model), the largest batch for a memory budget, and training throughput vs an sgemm roof
//! and the PyTorch peer.

use crate::backend::BackendKind;
use crate::bench::accounting::{DEFAULT_BASELINE_BYTES, estimate};
use crate::bench::budget::largest_batch;
use crate::bench::child::run_child;
use crate::bench::memory::{MemoryRow, breakdown_table, measured_table};
use crate::bench::op_profile;
use crate::bench::pytorch::{PytorchReport, find_script, run_reference, torch_version};
use crate::bench::table::{Table, mib};
use crate::bench::throughput::{
    BackendThroughput, ThroughputRound, ThroughputTask, measure, rounds_table, throughput_table,
};
use crate::cli::pretrain::MethodPreset;
use crate::config::TrainConfig;
use crate::model::TrunkKind;
use crate::profile::DeviceProfile;
use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Size of each buffer of the memory roof: above the last-level cache of the CPUs edgessl
/// runs on (32 MiB on the EPYC the benchmarks were taken on, a few MiB on Arm boards), so
/// the passes stream from memory.
const MEMORY_ROOF_MIB: usize = 64;

/// Options of `edgessl bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Peak RSS of K real training steps per method, each in a fresh process, next to the
    /// accounting model (parameters, gradients, optimizer, target, predictor, F, activations).
    Memory(MemoryArgs),
    /// Internal: one memory measurement (run by `bench memory` in a child process).
    #[command(hide = true)]
    MemoryChild(ChildArgs),
    /// Training images/s per method and backend, GFLOP/s, fraction of an sgemm roof.
    Throughput(ThroughputArgs),
    /// The largest batch per method that fits a memory budget (from the accounting model).
    Budget(BudgetArgs),
    /// kNN and linear-probe accuracy of every method and ablation at one pretraining budget,
    /// with train minutes, images/s, peak RSS, alignment and collapse per row.
    Accuracy(AccuracyArgs),
}

#[derive(Debug, Args)]
struct AccuracyArgs {
    /// Device profile every run starts from (`none` for the built-in defaults).
    #[arg(long, default_value = "generic-cpu")]
    profile: String,
    /// Rows, comma-separated (default: all): raw, random, byol, byol-linear, simsiam,
    /// directpred, directpred-f5, directcopy, no-predictor, no-stop-gradient, symmetric-no-ema.
    #[arg(long, value_delimiter = ',')]
    rows: Vec<String>,
    /// Pretraining steps of every row.
    #[arg(long, default_value_t = 150)]
    steps: u64,
    /// Frames per batch of every row.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Seed of every row.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Training images used as the kNN bank and probe training set.
    #[arg(long, default_value_t = 20000)]
    eval_train: usize,
    /// At most this many test images (default: all).
    #[arg(long)]
    eval_test: Option<usize>,
    /// Epochs of the linear probe.
    #[arg(long, default_value_t = 20)]
    probe_epochs: usize,
    /// Score on a held-out 20 % of the training split instead of the test split (for choosing
    /// hyper-parameters without the test set).
    #[arg(long)]
    holdout: bool,
    /// Folder for the table, the JSON and one run folder per row.
    #[arg(long, default_value = "runs/accuracy")]
    out: PathBuf,
    /// Run every row again even when its folder holds a finished result for these settings.
    #[arg(long)]
    force: bool,
    /// Further flags for every `pretrain` and `eval`, e.g. `--extra=--threads=2`
    /// or `--extra=--data=idx:IMAGES,LABELS` (flags both commands accept).
    #[arg(long, allow_hyphen_values = true)]
    extra: Vec<String>,
}

/// The shape every method is benchmarked at: defaults < `--profile` < these flags.
#[derive(Debug, Clone, Args)]
struct ShapeFlags {
    /// Device profile (name in firmware-config/ or a path) to start from.
    #[arg(long)]
    profile: Option<String>,
    /// Methods, comma-separated: byol (2-layer MLP), linear (trained), simsiam (MLP, momentum
    /// 0), directpred, directcopy.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "byol,linear,simsiam,directpred,directcopy"
    )]
    methods: Vec<MethodPreset>,
    /// Trunk architecture.
    #[arg(long, value_enum)]
    trunk: Option<TrunkKind>,
    /// Trunk base width.
    #[arg(long)]
    width: Option<usize>,
    /// Blocks per stage (compact trunk).
    #[arg(long)]
    blocks: Option<usize>,
    /// Input size in pixels (square).
    #[arg(long)]
    image_size: Option<usize>,
    /// Input channels (1 or 3).
    #[arg(long)]
    in_channels: Option<usize>,
    /// Projector hidden width.
    #[arg(long)]
    projector_hidden: Option<usize>,
    /// Projector output width d (size of F and the linear predictors).
    #[arg(long)]
    dim: Option<usize>,
    /// Hidden width of the BYOL/SimSiam predictor (4096 is BYOL's ImageNet head).
    #[arg(long)]
    predictor_hidden: Option<usize>,
    /// Frames per batch (each gives two views).
    #[arg(long)]
    batch: Option<usize>,
    /// CPU threads (0 = all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Seed of weights and synthetic data.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl ShapeFlags {
    /// The shared config (method still the base one) and the profile, if any.
    fn base(&self) -> anyhow::Result<(TrainConfig, Option<DeviceProfile>)> {
        let mut c = TrainConfig::default();
        let profile = self
            .profile
            .as_deref()
            .map(DeviceProfile::load)
            .transpose()?;
        if let Some(p) = &profile {
            p.apply(&mut c)?;
        }
        macro_rules! set {
            ($($flag:ident => $($field:ident).+),* $(,)?) => {
                $(if let Some(v) = self.$flag { c.$($field).+ = v; })*
            };
        }
        set!(trunk => model.trunk, width => model.width, blocks => model.blocks,
             image_size => model.image_size, in_channels => model.in_channels,
             projector_hidden => model.projector_hidden, dim => model.dim,
             predictor_hidden => method.predictor_hidden, batch => train.batch,
             threads => train.threads);
        c.train.seed = self.seed;
        Ok((c, profile))
    }

    /// One config per requested method, validated.
    fn configs(&self, base: &TrainConfig) -> anyhow::Result<Vec<TrainConfig>> {
        if self.methods.is_empty() {
            anyhow::bail!("--methods: give at least one method");
        }
        self.methods
            .iter()
            .map(|m| {
                let mut c = base.clone();
                // Each preset starts from the same target momentum (SimSiam sets 0).
                m.apply(&mut c);
                c.validate().with_context(|| format!("--methods {m:?}"))?;
                Ok(c)
            })
            .collect()
    }
}

#[derive(Debug, Args)]
struct MemoryArgs {
    #[command(flatten)]
    shape: ShapeFlags,
    /// Backend (CPU backends give host RSS; GPU memory is not in RSS).
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
    /// Training steps per child before VmHWM is read.
    #[arg(long, default_value_t = 3)]
    steps: u64,
    /// glibc only: run the children with a fixed mmap threshold (`MALLOC_MMAP_THRESHOLD_`) and
    /// `--heap release`, so every feature map above it is its own mapping, returned on free.
    /// Heap-served maps can add tens of MiB to the peak through fragmentation; compare with
    /// and without to see the allocator's share.
    #[arg(long, value_name = "BYTES")]
    mmap_threshold: Option<u64>,
    /// Also write the results as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ChildArgs {
    /// The full training config as JSON (written by the parent).
    #[arg(long)]
    config_json: String,
}

#[derive(Debug, Args)]
struct ThroughputArgs {
    #[command(flatten)]
    shape: ShapeFlags,
    /// Backends, comma-separated (compiled ones only).
    #[arg(long, value_enum, value_delimiter = ',')]
    backends: Vec<BackendKind>,
    /// Untimed warm-up steps per method.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Timed steps per method.
    #[arg(long, default_value_t = 5)]
    steps: u64,
    /// Size n of the n x n sgemm that measures the roof.
    #[arg(long, default_value_t = 1024)]
    roof_n: usize,
    /// Also run benches/pytorch_reference.py per method and print the ratio.
    #[arg(long)]
    pytorch: bool,
    /// Measure this many rounds, each all of edgessl's methods and then (with --pytorch) the
    /// reference's, and print every round's img/s and ratio with the median ratio: on a
    /// shared or thermally throttled machine one pair of runs can be off by 10-20 %.
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    /// Python interpreter with torch (default: $EDGESSL_PYTHON, else python3).
    #[arg(long)]
    python: Option<String>,
    /// Also write the results as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also print where the timed steps' time goes: per phase of the step (target and online
    /// forward, F update, loss, backward, optimiser, predictor rule, EMA), per kernel
    /// (convolution forward / input grad / weight grad, BatchNorm forward / backward) and per
    /// layer, with each convolution's GFLOP/s against the roof. Phase boundaries synchronise
    /// the device, which can lower img/s on a GPU.
    #[arg(long)]
    profile_ops: bool,
}

#[derive(Debug, Args)]
struct BudgetArgs {
    #[command(flatten)]
    shape: ShapeFlags,
    /// Memory budget in MiB (default: the profile's memory_budget_mib).
    #[arg(long)]
    budget_mib: Option<u64>,
    /// Process baseline in MiB (binary, libraries, allocator) to add; default: measured on
    /// the reference box.
    #[arg(long)]
    baseline_mib: Option<f64>,
}

/// Run `edgessl bench ...`.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Memory(a) => memory(a),
        BenchCommand::MemoryChild(a) => child(a),
        BenchCommand::Throughput(a) => throughput(a),
        BenchCommand::Budget(a) => budget(a),
        BenchCommand::Accuracy(a) => accuracy(a),
    }
}

fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("cannot serialise the results")?;
    std::fs::write(path, text)
        .with_context(|| format!("--json {}: cannot write", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn shape_line(c: &TrainConfig) -> String {
    let m = &c.model;
    format!(
        "{:?} trunk width {} ({} block/stage), {}x{}x{} input, projector {}→{}, predictor hidden {}, batch {} (2x{} images), {} threads",
        m.trunk,
        m.width,
        m.blocks,
        m.image_size,
        m.image_size,
        m.in_channels,
        m.projector_hidden,
        m.dim,
        c.method.predictor_hidden,
        c.train.batch,
        c.train.batch,
        if c.train.threads == 0 { "all".to_string() } else { c.train.threads.to_string() }
    )
    .to_lowercase()
}

#[derive(Serialize)]
struct MemoryReport<'a> {
    shape: String,
    backend: BackendKind,
    steps: u64,
    heap: crate::runtime::HeapPolicy,
    mmap_threshold: Option<u64>,
    rows: &'a [MemoryRow],
    notes: Vec<String>,
}

fn memory(a: MemoryArgs) -> anyhow::Result<()> {
    let (mut base, _) = a.shape.base()?;
    if let Some(b) = a.backend {
        base.train.backend = b;
    }
    base.train.steps = a.steps.max(1);
    let configs = a.shape.configs(&base)?;
    println!("# bench memory: {}\n", shape_line(&base));
    println!(
        "backend {}, {} steps per method, one fresh process per method\n",
        base.train.backend, base.train.steps
    );
    let mut rows = Vec::new();
    for c in &configs {
        eprintln!("measuring {} ...", c.method.label());
        rows.push(MemoryRow::measure(c, a.mmap_threshold)?);
    }
    println!("{}", measured_table(&rows));
    println!("## accounting (MiB)\n\n{}", breakdown_table(&rows));
    let mut notes = vec![
        "Measured peak = VmHWM of the child after the steps; baseline = VmHWM of the child before \
         any model existed (binary, libraries, allocator); 'before step' = after building the \
         learner and the first batch."
            .to_string(),
        "flex and candle (CPU) allocate tensors with the system allocator and keep no tensor \
         memory pool of their own. glibc malloc acts as one: feature maps below 32 MiB come \
         from the heap and freed ones stay resident ('RSS after'), and heap fragmentation can \
         raise the peak. `--heap retain` (pretrain's default) keeps all freed memory for the \
         next step (faster, higher peak); `--heap release` is glibc's default behaviour; \
         --mmap-threshold 1048576 shows the peak without heap-served maps. VmHWM is the true \
         peak in every case. The accounting adds the measured baseline as a constant."
            .to_string(),
    ];
    let heap = crate::bench::child::child_heap_policy(a.mmap_threshold);
    notes.push(format!(
        "children ran with --heap {heap} (bench memory defaults to release; `pretrain` \
         defaults to retain, which is faster but adds heap fragmentation to the peak: pass \
         --heap retain to measure that)"
    ));
    if let Some(t) = a.mmap_threshold {
        notes.push(format!("children ran with MALLOC_MMAP_THRESHOLD_={t}"));
    }
    if !base.train.backend.is_cpu() {
        notes.push(format!(
            "{} keeps tensors in device memory: RSS does not show them, so measured and predicted \
             are not comparable here.",
            base.train.backend
        ));
    }
    let find = |label: &str| rows.iter().find(|r| r.method == label);
    if let (Some(dp), Some(byol)) = (find("directpred"), find("byol")) {
        let ratio = dp.measured.peak_hwm_bytes as f64 / byol.measured.peak_hwm_bytes.max(1) as f64;
        let above = |r: &MemoryRow| {
            r.measured
                .peak_hwm_bytes
                .saturating_sub(r.measured.baseline_hwm_bytes) as f64
        };
        notes.push(format!(
            "DirectPred / BYOL peak RSS: {ratio:.3} (target <= 0.8); above baseline: {:.3}; \
             predicted: {:.3}",
            above(dp) / above(byol).max(1.0),
            dp.predicted.total() as f64 / byol.predicted.total().max(1) as f64
        ));
    }
    for n in &notes {
        println!("- {n}");
    }
    if let Some(path) = &a.json {
        let report = MemoryReport {
            shape: shape_line(&base),
            backend: base.train.backend,
            steps: base.train.steps,
            heap,
            mmap_threshold: a.mmap_threshold,
            rows: &rows,
            notes,
        };
        write_json(path, &report)?;
    }
    Ok(())
}

fn child(a: ChildArgs) -> anyhow::Result<()> {
    // Read the high-water mark before anything big exists: the process baseline.
    let baseline = crate::memory::peak_rss_bytes().unwrap_or(0);
    let config: TrainConfig = serde_json::from_str(&a.config_json)
        .context("memory-child: --config-json is not a training config")?;
    let report = run_child(config, baseline)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

#[derive(Serialize)]
struct ThroughputReport<'a> {
    shape: String,
    warmup: u64,
    steps: u64,
    flops_formula: &'static str,
    heap: crate::runtime::HeapPolicy,
    /// Whether 3x3 stride-1 convolutions ran as Winograd F(2x2, 3x3) (the FLOP count is the
    /// direct one either way).
    winograd: bool,
    backends: &'a [BackendThroughput],
    pytorch: &'a [PytorchReport],
    pytorch_missing: Option<String>,
    /// Every round (the fields above are round 1's).
    rounds: &'a [ThroughputRound],
}

fn throughput(a: ThroughputArgs) -> anyhow::Result<()> {
    let (base, _) = a.shape.base()?;
    let configs = a.shape.configs(&base)?;
    let backends = if a.backends.is_empty() {
        vec![base.train.backend]
    } else {
        a.backends.clone()
    };
    if a.steps == 0 {
        anyhow::bail!("--steps 0: time at least one step");
    }
    if a.roof_n < 16 {
        anyhow::bail!(
            "--roof-n {}: use at least 16 (1024 or more measures the roof)",
            a.roof_n
        );
    }
    if a.rounds == 0 {
        anyhow::bail!("--rounds 0: measure at least one round");
    }
    crate::runtime::set_threads(base.train.threads)?;
    println!("# bench throughput: {}\n", shape_line(&base));
    let python = a
        .python
        .clone()
        .or_else(|| std::env::var("EDGESSL_PYTHON").ok())
        .unwrap_or_else(|| "python3".into());
    let threads = match base.train.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        t => t,
    };
    let mut torch_missing = None;
    let reference = if a.pytorch {
        match (torch_version(&python), find_script()) {
            (Ok(version), Some(script)) => {
                eprintln!("PyTorch {version} via {python}, {threads} threads");
                Some(script)
            }
            (Err(why), _) => {
                torch_missing = Some(why);
                None
            }
            (_, None) => {
                torch_missing = Some(format!("{} not found", crate::bench::pytorch::SCRIPT));
                None
            }
        }
    } else {
        None
    };
    let mut rounds = Vec::new();
    let mut first_reports = Vec::new();
    for round in 1..=a.rounds {
        let tag = if a.rounds > 1 {
            format!(" (round {round}/{})", a.rounds)
        } else {
            String::new()
        };
        let mut results = Vec::new();
        for &backend in &backends {
            eprintln!("measuring on {backend}{tag} ...");
            let task = ThroughputTask {
                configs: configs.clone(),
                warmup: a.warmup,
                steps: a.steps,
                roof_n: a.roof_n,
                // The per-op profile of round 1 is the one printed.
                profile_ops: a.profile_ops && round == 1,
            };
            results.push(measure(backend, task)?);
        }
        let mut reports = Vec::new();
        if let Some(script) = &reference {
            for c in &configs {
                eprintln!("measuring PyTorch {}{tag} ...", c.method.label());
                reports.push(run_reference(
                    &python, script, c, a.steps, a.warmup, threads,
                )?);
            }
        }
        rounds.push(ThroughputRound {
            backends: results,
            pytorch: reports
                .iter()
                .map(|r| (r.method.clone(), r.images_per_sec))
                .collect(),
        });
        if round == 1 {
            first_reports = reports;
        }
    }
    let results = rounds[0].backends.clone();
    let torch_reports = first_reports;
    let ratios: Vec<(String, f64)> = torch_reports
        .iter()
        .map(|r| (r.method.clone(), r.images_per_sec))
        .collect();
    if a.rounds > 1 {
        println!("## Round 1\n");
    }
    println!("{}", throughput_table(&results, &ratios));
    if !torch_reports.is_empty() {
        let mut t = Table::new([
            "method",
            "PyTorch img/s",
            "PyTorch peak RSS MiB",
            "torch",
            "threads",
        ]);
        for r in &torch_reports {
            t.row([
                r.method.clone(),
                format!("{:.1}", r.images_per_sec),
                mib(r.peak_rss_bytes),
                r.torch.clone(),
                r.threads.to_string(),
            ]);
        }
        println!("## PyTorch reference\n\n{t}");
    }
    if let Some(why) = &torch_missing {
        println!("- PyTorch comparison skipped: {why}");
    }
    if a.rounds > 1 {
        println!(
            "## All {} rounds (edgessl, then the reference, in each)\n\n{}",
            a.rounds,
            rounds_table(&rounds)
        );
    }
    // BatchNorm's kernels are host code on every backend that runs them: one memory roof.
    let memory = a
        .profile_ops
        .then(|| crate::bench::roof::memory_roof(MEMORY_ROOF_MIB, 10));
    for r in &results {
        for row in &r.rows {
            if let Some(p) = &row.profile {
                let title = format!("{} on {}", row.method, row.backend);
                let roofs = op_profile::Roofs {
                    gflops: Some(r.roof.gflops),
                    gbs: memory.map(|m| m.gbs),
                };
                println!("\n{}", op_profile::render(&title, p, roofs));
            }
        }
    }
    if let Some(m) = memory {
        println!(
            "- Profile: the timed steps themselves. Kernels are edgessl's fast ops, timed \
             inside their phase; `other` is the rest of the phase (burn's own ops and autodiff \
             bookkeeping). Convolutions: GFLOP/s of 2·N·CO·CI·KH·KW·HO·WO per product against \
             this backend's sgemm roof above (for a Winograd convolution the rate of that \
             direct count, not of the fewer multiplications it does). BatchNorm: GB/s of the maps its passes read and \
             write (each pass reads or writes a whole map once) against the memory roof, \
             {gbs:.1} GB/s = best of {reps} passes y = y·a + x over two {mib} MiB f32 buffers \
             on all threads (bytes: two reads and a write), measured after the methods; maps \
             that still sit in the last-level cache can beat it.",
            gbs = m.gbs,
            reps = m.reps,
            mib = m.mib,
        );
    }
    println!(
        "- img/s counts frames (each two views), warm-up excluded, synthetic batches generated \
         before timing. FLOPs/frame = 2 views x 2 x (3 x online MACs + 1 x target MACs), \
         MACs of direct convolutions (the count PyTorch's rate uses too); Winograd {wino}: \
         with it the forward and input gradient of the 3x3 stride-1 convolutions on maps of \
         12x12 and more (8x8 with 128 channels) do 16 multiplications per 2x2 outputs and \
         channel pair instead of 36, so GFLOP/s and 'of roof' are rates of the direct count \
         and 'GFLOP/s done' the rate of the arithmetic done (`--winograd false` for direct \
         sums); roof = best of 10 {n}x{n} f32 matmuls on the same backend and threads, 5 \
         before and 5 after the methods (the slowest of them: {slowest}); 'sgemm during steps' = median \
         of one such matmul after each timed step (not in the step's time), the machine's \
         speed over the same minutes; heap policy {heap} (it moves both the step and the \
         roof: see `edgessl --help`).",
        n = a.roof_n,
        wino = if crate::ops::winograd_in_use() {
            "in use"
        } else {
            "off"
        },
        slowest = results
            .iter()
            .map(|r| format!("{:.1} GFLOP/s on {}", r.roof.slowest_gflops, r.backend))
            .collect::<Vec<_>>()
            .join(", "),
        heap = crate::runtime::heap_policy(),
    );
    if let Some(path) = &a.json {
        let report = ThroughputReport {
            shape: shape_line(&base),
            warmup: a.warmup,
            steps: a.steps,
            flops_formula: "2 views x 2 FLOP/MAC x (3 x online MACs + 1 x target MACs) per frame",
            heap: crate::runtime::heap_policy(),
            winograd: crate::ops::winograd_in_use(),
            backends: &results,
            pytorch: &torch_reports,
            pytorch_missing: torch_missing,
            rounds: &rounds,
        };
        write_json(path, &report)?;
    }
    Ok(())
}

fn budget(a: BudgetArgs) -> anyhow::Result<()> {
    let (base, profile) = a.shape.base()?;
    let budget_mib = match (a.budget_mib, &profile) {
        (Some(b), _) => b,
        (None, Some(p)) => p.meta.memory_budget_mib,
        (None, None) => anyhow::bail!("give --budget-mib or a --profile with memory_budget_mib"),
    };
    let baseline = a
        .baseline_mib
        .map_or(DEFAULT_BASELINE_BYTES, |m| (m * 1024.0 * 1024.0) as u64);
    let configs = a.shape.configs(&base)?;
    if let Some(p) = &profile {
        println!(
            "profile {} ({}): {}",
            p.name,
            p.path.display(),
            p.meta.description
        );
    }
    println!(
        "budget {budget_mib} MiB, baseline {} MiB, {}\n",
        mib(baseline),
        shape_line(&base)
    );
    let configured = base.train.batch;
    let mut t = Table::new([
        "method",
        "largest batch",
        "predicted MiB",
        "at batch 2 MiB",
        "configured batch",
    ]);
    for c in &configs {
        let label = c.method.label();
        let at_configured = estimate(&c.model, &c.method, &c.optim, configured, baseline).total();
        let verdict = format!(
            "{configured}: {} MiB, {}",
            mib(at_configured),
            if at_configured <= budget_mib.saturating_mul(1024 * 1024) {
                "fits"
            } else {
                "OVER BUDGET"
            }
        );
        match largest_batch(c, budget_mib.saturating_mul(1024 * 1024), baseline) {
            Ok(b) => {
                let at = estimate(&c.model, &c.method, &c.optim, b, baseline).total();
                let at2 = estimate(&c.model, &c.method, &c.optim, 2, baseline).total();
                t.row([label, b.to_string(), mib(at), mib(at2), verdict]);
            }
            Err(e) => t.row([
                label,
                "does not fit".into(),
                "-".into(),
                e.to_string(),
                verdict,
            ]),
        }
    }
    println!("{t}");
    Ok(())
}

fn accuracy(a: AccuracyArgs) -> anyhow::Result<()> {
    use crate::bench::accuracy::{Budget, ROWS, accuracy_table, outputs, row, run_row};
    let specs: Vec<_> = if a.rows.is_empty() {
        ROWS.iter().collect()
    } else {
        a.rows
            .iter()
            .map(|k| row(k))
            .collect::<anyhow::Result<_>>()?
    };
    if a.steps == 0 {
        anyhow::bail!("--steps 0: every row needs at least one pretraining step");
    }
    let budget = Budget {
        profile: a.profile,
        steps: a.steps,
        batch: a.batch,
        seed: a.seed,
        eval_train: a.eval_train,
        eval_test: a.eval_test,
        probe_epochs: a.probe_epochs,
        holdout: a.holdout,
        extra: a.extra,
    };
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("--out {}: cannot create the folder", a.out.display()))?;
    let exe = std::env::current_exe().context("cannot locate the running edgessl binary")?;
    let (md, json) = outputs(&a.out);
    let mut results = Vec::new();
    for spec in specs {
        eprintln!("{}: {}", spec.key, spec.label);
        results.push(run_row(&exe, &a.out, spec, &budget, a.force)?);
        // Write after every row, so an interrupted table still shows what finished.
        let header = format!(
            "# bench accuracy: {} steps x batch {}, profile {}, seed {}; kNN bank and probe on {} training images, {}-epoch probe, scored on {}\n\n",
            budget.steps,
            budget.batch,
            budget.profile,
            budget.seed,
            budget.eval_train,
            budget.probe_epochs,
            if budget.holdout {
                "20 % of the training split"
            } else {
                "the test split"
            }
        );
        let table = accuracy_table(&results);
        std::fs::write(&md, format!("{header}{table}"))
            .with_context(|| format!("cannot write {}", md.display()))?;
        std::fs::write(&json, serde_json::to_string_pretty(&results)?)
            .with_context(|| format!("cannot write {}", json.display()))?;
    }
    print!("{}", std::fs::read_to_string(&md)?);
    eprintln!("wrote {} and {}", md.display(), json.display());
    Ok(())
}
