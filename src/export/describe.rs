//! Human-readable description of any file edgessl writes, for `edgessl inspect`.

use super::card::CARD_JSON_KEY;
use super::encoder::EncoderExport;
use crate::checkpoint::container::{HEADER_LEN, MAGIC};
use crate::checkpoint::{CheckpointError, HeaderInfo, PayloadKind, inspect};
use ::safetensors::SafeTensors;
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::io::Read;
use std::path::Path;

/// What [`describe`] found out about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDescription {
    /// Multi-line report: kind, header fields, verification, card and tensors.
    pub text: String,
    /// True when the file is intact (checksum, and for exports tensor consistency; for
    /// safetensors, a consistent header, since that format has no checksum).
    pub verifies: bool,
}

/// Describe an edgessl container (checkpoint or encoder export) or a safetensors file: what it
/// holds and whether it verifies. A file that is recognised but damaged is described (with
/// `verifies: no` and the reason) rather than returned as an error; an unreadable or
/// unrecognised file is an error naming it.
pub fn describe(path: impl AsRef<Path>) -> Result<FileDescription> {
    let path = path.as_ref();
    let mut head = Vec::with_capacity(MAGIC.len());
    std::fs::File::open(path)
        .and_then(|f| f.take(MAGIC.len() as u64).read_to_end(&mut head))
        .with_context(|| format!("{}: cannot read", path.display()))?;
    if head == MAGIC {
        describe_container(path)
    } else {
        describe_safetensors(path)
    }
}

/// [`describe`], text only.
pub fn describe_file(path: impl AsRef<Path>) -> Result<String> {
    describe(path).map(|d| d.text)
}

fn describe_container(path: &Path) -> Result<FileDescription> {
    let mut out = String::new();
    let info = match inspect(path) {
        Ok(info) => info,
        // Recognised by its magic, but the header itself is damaged or cut short.
        Err(CheckpointError::Format { source, .. }) => {
            writeln!(out, "{}: edgessl file (header unreadable)", path.display())?;
            writeln!(out, "verifies: no ({source})")?;
            return Ok(FileDescription {
                text: out,
                verifies: false,
            });
        }
        Err(e) => return Err(e.into()),
    };
    let kind = match info.kind {
        Some(PayloadKind::Checkpoint) => "checkpoint".to_owned(),
        Some(PayloadKind::EncoderExport) => "encoder export".to_owned(),
        None => format!("unknown kind (code {})", info.kind_code),
    };
    writeln!(out, "{}: edgessl {kind}", path.display())?;
    writeln!(out, "format version: v{}", info.version)?;
    writeln!(
        out,
        "payload: {} bytes (file {} bytes)",
        info.payload_len, info.file_len
    )?;
    let verdict = |out: String, verifies| {
        Ok(FileDescription {
            text: out,
            verifies,
        })
    };
    if !info.verifies() {
        writeln!(out, "verifies: no ({})", why_not(&info))?;
        return verdict(out, false);
    }
    if info.kind != Some(PayloadKind::EncoderExport) {
        // A checkpoint's payload type belongs to the trainer; the checksum is all we can check.
        writeln!(out, "verifies: yes (checksum ok)")?;
        return verdict(out, true);
    }
    let export = match EncoderExport::load(path) {
        Ok(export) => export,
        Err(e) => {
            writeln!(out, "verifies: no ({e})")?;
            return verdict(out, false);
        }
    };
    writeln!(out, "verifies: yes (checksum ok, tensors consistent)")?;
    writeln!(out, "\nmodel card:")?;
    for line in export.card.to_toml()?.lines() {
        writeln!(out, "  {line}")?;
    }
    writeln!(
        out,
        "\ntensors: {} tensors, {} values",
        export.tensors.len(),
        export.param_count()
    )?;
    for t in &export.tensors {
        let dtype = t.precision().as_str().to_uppercase();
        write_tensor_line(&mut out, &t.name, &t.shape, &dtype)?;
    }
    verdict(out, true)
}

fn why_not(info: &HeaderInfo) -> String {
    if !info.version_supported() {
        format!("format v{} is not readable by this build", info.version)
    } else if info.kind.is_none() {
        format!("unknown payload kind {}", info.kind_code)
    } else if info.file_len != info.payload_len.saturating_add(HEADER_LEN as u64) {
        "file length does not match the header: truncated or corrupt".to_owned()
    } else {
        "checksum mismatch: file is corrupt".to_owned()
    }
}

fn write_tensor_line(
    out: &mut String,
    name: &str,
    shape: &[usize],
    dtype: &str,
) -> std::fmt::Result {
    writeln!(out, "  {name:<40} {dtype:<5} {shape:?}")
}

fn describe_safetensors(path: &Path) -> Result<FileDescription> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "{}: not an edgessl container or safetensors file ({e})",
            path.display()
        )
    })?;
    let mut out = String::new();
    writeln!(out, "{}: safetensors", path.display())?;
    writeln!(
        out,
        "verifies: yes (header and tensor offsets consistent; the format has no checksum)"
    )?;
    if let Some(meta) = header.metadata() {
        let mut keys: Vec<_> = meta.keys().filter(|k| *k != CARD_JSON_KEY).collect();
        keys.sort();
        writeln!(out, "\nmetadata:")?;
        for k in keys {
            writeln!(out, "  {k} = {}", meta[k])?;
        }
        if meta.contains_key(CARD_JSON_KEY) {
            writeln!(out, "  ({CARD_JSON_KEY}: the full model card as JSON)")?;
        }
    }
    let infos = header.tensors();
    let names = header.offset_keys();
    // read_metadata has checked every shape product for overflow.
    let total: usize = infos
        .values()
        .map(|i| i.shape.iter().product::<usize>())
        .sum();
    writeln!(out, "\ntensors: {} tensors, {total} values", names.len())?;
    for name in &names {
        let info = infos[name];
        write_tensor_line(&mut out, name, &info.shape, &format!("{:?}", info.dtype))?;
    }
    Ok(FileDescription {
        text: out,
        verifies: true,
    })
}
