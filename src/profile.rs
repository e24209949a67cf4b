//! Device profiles: one TOML file per device in `firmware-config/`.
//!
//! A profile is a training config with device metadata on top:
//!
//! ```toml
//! [profile]                      # metadata that is not part of TrainConfig
//! description = "Raspberry Pi 5 (4x Cortex-A76, 4-8 GB)"
//! memory_budget_mib = 1536       # hard budget for one training step
//! checkpoint_every_steps = 200   # at least one of steps / secs
//! checkpoint_every_secs = 300
//! export_precision = "f16"       # f32 | f16
//! frame_source = "stream:/tmp/camera.fifo@320x240"
//! features = []                  # cargo features the backend needs
//!
//! [model]                        # optional: the same keys as TrainConfig's tables;
//! image_size = 32                # only the keys given override
//! [train]
//! backend = "flex"
//! threads = 4
//! batch = 64
//! ```
//!
//! Order of precedence: defaults < profile < config file / flags (the caller applies those
//! after [`DeviceProfile::apply`]).

use crate::config::TrainConfig;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// The folder profiles live in, relative to the repository root.
pub const PROFILE_DIR: &str = "firmware-config";

/// Tables a profile may carry besides `[profile]`: those of [`TrainConfig`].
const OVERRIDE_TABLES: [&str; 4] = ["model", "method", "optim", "train"];

/// Precision of the exported encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportPrecision {
    /// 32-bit floats (bit-exact with training).
    F32,
    /// 16-bit floats (half the size; for GPUs and NPUs with fast f16).
    F16,
}

/// Where a device's frames come from by default. Written as a string:
/// `synthetic`, `data:SPEC` (a `--data` dataset, e.g. `data:fashion-mnist`), `frames:DIR`
/// (a folder of images), `stream:PATH@WxH` (raw frames from a camera pipe or device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameSourceSpec {
    /// Built-in synthetic images.
    Synthetic,
    /// A dataset by its `--data` spec.
    Data(String),
    /// A folder of image files.
    Frames(PathBuf),
    /// Raw frames of a fixed size from a file, FIFO or device.
    Stream {
        /// The file, FIFO or device.
        path: PathBuf,
        /// Frame width in pixels.
        width: usize,
        /// Frame height in pixels.
        height: usize,
    },
}

impl FrameSourceSpec {
    /// Parse the string form (see the type docs).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "frame_source = {text:?}: {why} (expected synthetic, data:SPEC, frames:DIR or stream:PATH@WxH)"
            )
        };
        if text == "synthetic" {
            return Ok(Self::Synthetic);
        }
        let (kind, rest) = text.split_once(':').ok_or_else(|| bad("no kind prefix"))?;
        if rest.is_empty() {
            return Err(bad("empty after the prefix"));
        }
        match kind {
            "data" => Ok(Self::Data(rest.to_string())),
            "frames" => Ok(Self::Frames(PathBuf::from(rest))),
            "stream" => {
                let (path, size) = rest
                    .rsplit_once('@')
                    .ok_or_else(|| bad("a stream needs @WxH"))?;
                let (w, h) = size
                    .split_once('x')
                    .ok_or_else(|| bad("size must be WxH"))?;
                let parse = |v: &str| v.parse::<usize>().ok().filter(|&v| v > 0);
                match (parse(w), parse(h), path.is_empty()) {
                    (Some(width), Some(height), false) => Ok(Self::Stream {
                        path: PathBuf::from(path),
                        width,
                        height,
                    }),
                    _ => Err(bad("size must be positive WxH after a non-empty path")),
                }
            }
            _ => Err(bad(&format!("unknown kind `{kind}`"))),
        }
    }
}

impl FrameSourceSpec {
    /// Make this the frame source of `data` (the profile's default when the command line names
    /// none). A leading `~/` in a path is the user's home folder.
    pub fn apply_to(&self, data: &mut crate::data::DataArgs) -> anyhow::Result<()> {
        use crate::data::{DataSpec, FrameSize};
        match self {
            Self::Synthetic => {
                data.data = DataSpec::Synthetic {
                    count: crate::data::spec::DEFAULT_SYNTHETIC_COUNT,
                }
            }
            Self::Data(spec) => {
                data.data = spec
                    .parse()
                    .map_err(|e| anyhow::anyhow!("profile frame_source = \"data:{spec}\": {e}"))?
            }
            Self::Frames(dir) => data.frames = Some(expand_home(dir)),
            Self::Stream {
                path,
                width,
                height,
            } => {
                data.stream = Some(expand_home(path).display().to_string());
                data.stream_size = Some(FrameSize {
                    width: *width,
                    height: *height,
                });
            }
        }
        Ok(())
    }
}

/// `~/x` as `$HOME/x` (profiles are shared between users, so they name home-relative folders).
fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}

impl fmt::Display for FrameSourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Synthetic => f.write_str("synthetic"),
            Self::Data(spec) => write!(f, "data:{spec}"),
            Self::Frames(dir) => write!(f, "frames:{}", dir.display()),
            Self::Stream {
                path,
                width,
                height,
            } => write!(f, "stream:{}@{width}x{height}", path.display()),
        }
    }
}

impl Serialize for FrameSourceSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FrameSourceSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The `[profile]` table: device facts that are not training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileMeta {
    /// What the device is (shown by `bench budget` and in logs).
    pub description: String,
    /// Memory one training run may use, in MiB (process peak, baseline included).
    pub memory_budget_mib: u64,
    /// Write a checkpoint every this many steps.
    #[serde(default)]
    pub checkpoint_every_steps: Option<u64>,
    /// Write a checkpoint every this many seconds (power loss on battery devices).
    #[serde(default)]
    pub checkpoint_every_secs: Option<u64>,
    /// Precision of the exported encoder.
    pub export_precision: ExportPrecision,
    /// Default frame source.
    pub frame_source: FrameSourceSpec,
    /// Cargo features the profile's backend needs (`candle-cuda`, `candle-metal`).
    #[serde(default)]
    pub features: Vec<String>,
}

/// A loaded device profile.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceProfile {
    /// Profile name (file stem).
    pub name: String,
    /// The file it came from.
    pub path: PathBuf,
    /// The `[profile]` table.
    pub meta: ProfileMeta,
    /// The `[model]`, `[method]`, `[optim]`, `[train]` tables as written (only given keys).
    pub overrides: toml::Table,
}

/// A profile that cannot be found, read or used. Every variant names the file (or the
/// places searched).
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A bare name that is in none of the profile folders.
    #[error("device profile `{name}` not found; looked for {}; available: {}", list_paths(searched), available.join(", "))]
    NotFound {
        /// The name asked for.
        name: String,
        /// Files tried.
        searched: Vec<PathBuf>,
        /// Profiles that do exist in those folders.
        available: Vec<String>,
    },
    /// The file cannot be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML, an unknown key or table, or a wrong type.
    #[error("{}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the key.
        message: String,
    },
    /// Parsed, but a value is out of range.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the key.
        message: String,
    },
}

/// Write the keys of `overrides` (tables `model`, `method`, `optim`, `train`, as in a TrainConfig
/// TOML file) into `config`, leaving every other key as it is. `path` names the source in
/// errors. The same merge serves a config file layered on top of a profile: parse the file
/// into a `toml::Table` and apply it after the profile.
pub fn apply_overrides(
    config: &mut TrainConfig,
    overrides: &toml::Table,
    path: &Path,
) -> Result<(), ProfileError> {
    let parse_err = |message: String| ProfileError::Parse {
        path: path.to_path_buf(),
        message,
    };
    let mut merged = toml::Table::try_from(&*config).map_err(|e| parse_err(e.to_string()))?;
    for (section, values) in overrides {
        let Some(values) = values.as_table() else {
            return Err(parse_err(format!(
                "`{section}` must be a table ([{section}])"
            )));
        };
        let slot = merged
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(slot) = slot.as_table_mut() else {
            return Err(parse_err(format!(
                "[{section}] is not a table in the config"
            )));
        };
        for (k, v) in values {
            slot.insert(k.clone(), v.clone());
        }
    }
    match merged.clone().try_into::<TrainConfig>() {
        Ok(c) => {
            *config = c;
            Ok(())
        }
        Err(e) => Err(parse_err(
            section_error(&merged).unwrap_or_else(|| e.to_string()),
        )),
    }
}

/// The first section of `merged` that does not deserialise, as `in [section]: message`
/// (the whole-config error does not say which table the bad key is in).
fn section_error(merged: &toml::Table) -> Option<String> {
    fn check<T: serde::de::DeserializeOwned>(v: &toml::Value) -> Result<(), String> {
        v.clone()
            .try_into::<T>()
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
    merged.iter().find_map(|(section, value)| {
        let result = match section.as_str() {
            "model" => check::<crate::model::ModelConfig>(value),
            "method" => check::<crate::ssl::MethodConfig>(value),
            "optim" => check::<crate::ssl::OptimConfig>(value),
            "train" => check::<crate::config::RunConfig>(value),
            _ => Ok(()),
        };
        result
            .err()
            .map(|m| format!("in [{section}]: {}", m.trim()))
    })
}

fn list_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Folders searched for a bare profile name: `./firmware-config`, then `firmware-config` in
/// every ancestor of the running binary's folder (so `target/release/edgessl` finds the repo's).
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from(PROFILE_DIR)];
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1) {
            let candidate = dir.join(PROFILE_DIR);
            if candidate.is_dir() && !dirs.contains(&candidate) {
                dirs.push(candidate);
            }
        }
    }
    dirs
}

/// Names of the profiles found in [`search_dirs`], sorted, without duplicates.
pub fn available() -> Vec<String> {
    let mut names: Vec<String> = search_dirs()
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| {
            let p = e.ok()?.path();
            if p.extension()? != "toml" {
                return None;
            }
            Some(p.file_stem()?.to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Whether `text` names a file rather than a profile (a separator or a `.toml` ending).
fn is_path(text: &str) -> bool {
    text.contains('/') || text.contains(std::path::MAIN_SEPARATOR) || text.ends_with(".toml")
}

impl DeviceProfile {
    /// Load a profile by name (`raspberry-pi-5`, looked up in [`search_dirs`]) or by path.
    pub fn load(name_or_path: &str) -> Result<Self, ProfileError> {
        if is_path(name_or_path) {
            return Self::load_file(Path::new(name_or_path));
        }
        let searched: Vec<PathBuf> = search_dirs()
            .iter()
            .map(|d| d.join(format!("{name_or_path}.toml")))
            .collect();
        match searched.iter().find(|p| p.is_file()) {
            Some(path) => Self::load_file(path),
            None => Err(ProfileError::NotFound {
                name: name_or_path.to_string(),
                searched,
                available: available(),
            }),
        }
    }

    /// Load a profile file.
    pub fn load_file(path: &Path) -> Result<Self, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parse profile text; `path` names it in errors and gives the profile its name.
    /// Checks everything up front: unknown tables or keys, types, and that the overrides
    /// give a valid [`TrainConfig`] on top of the defaults.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ProfileError> {
        let parse_err = |message: String| ProfileError::Parse {
            path: path.to_path_buf(),
            message,
        };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| parse_err(e.to_string()))?;
        let meta_value = table
            .remove("profile")
            .ok_or_else(|| parse_err("missing the [profile] table".into()))?;
        let meta: ProfileMeta = meta_value
            .try_into()
            .map_err(|e: toml::de::Error| parse_err(format!("in [profile]: {e}")))?;
        for (key, value) in &table {
            if !OVERRIDE_TABLES.contains(&key.as_str()) {
                return Err(parse_err(format!(
                    "unknown table or key `{key}` (a profile has [profile], [model], [method], [optim], [train])"
                )));
            }
            if !value.is_table() {
                return Err(parse_err(format!("`{key}` must be a table ([{key}])")));
            }
        }
        let name = path
            .file_stem()
            .map_or_else(|| "profile".into(), |s| s.to_string_lossy().into_owned());
        let profile = Self {
            name,
            path: path.to_path_buf(),
            meta,
            overrides: table,
        };
        profile.check()?;
        Ok(profile)
    }

    fn check(&self) -> Result<(), ProfileError> {
        let invalid = |message: String| ProfileError::Invalid {
            path: self.path.clone(),
            message,
        };
        if self.meta.memory_budget_mib == 0 {
            return Err(invalid(
                "profile.memory_budget_mib = 0: must be at least 1".into(),
            ));
        }
        match (
            self.meta.checkpoint_every_steps,
            self.meta.checkpoint_every_secs,
        ) {
            (None, None) => {
                return Err(invalid(
                    "[profile] needs checkpoint_every_steps and/or checkpoint_every_secs".into(),
                ));
            }
            (Some(0), _) | (_, Some(0)) => {
                return Err(invalid(
                    "profile.checkpoint_every_*: must be at least 1".into(),
                ));
            }
            _ => {}
        }
        let config = self.train_config()?;
        config.validate().map_err(|e| invalid(e.to_string()))
    }

    /// Write the profile's overrides into `config` (only the keys the profile gives).
    pub fn apply(&self, config: &mut TrainConfig) -> Result<(), ProfileError> {
        apply_overrides(config, &self.overrides, &self.path)
    }

    /// The defaults with this profile applied (not validated: see [`TrainConfig::validate`]).
    pub fn train_config(&self) -> Result<TrainConfig, ProfileError> {
        let mut config = TrainConfig::default();
        self.apply(&mut config)?;
        Ok(config)
    }

    /// The memory budget in bytes.
    pub fn budget_bytes(&self) -> u64 {
        self.meta.memory_budget_mib.saturating_mul(1024 * 1024)
    }

    /// Cargo features this build lacks for the profile (empty when it can run here).
    pub fn missing_features(&self) -> Vec<String> {
        let compiled = crate::backend::BackendKind::compiled();
        self.meta
            .features
            .iter()
            .filter(|f| !compiled.iter().any(|k| k.to_string() == **f))
            .cloned()
            .collect()
    }
}
