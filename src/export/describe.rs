//! Human-readable description of any file edgessl writes, for `edgessl inspect`.

use super::encoder::EncoderExport;
use super::tensor::NamedTensor;
use crate::checkpoint::container::{HEADER_LEN, MAGIC};
use crate::checkpoint::{CheckpointError, HeaderInfo, PayloadKind, inspect};
use ::safetensors::SafeTensors;
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::io::Read;
use std::path::Path;

/// Describe an edgessl container (checkpoint or encoder export) or a safetensors file: what it
/// holds and whether it verifies. A file that is recognised but damaged is described (with
/// `verifies: no` and the reason) rather than returned as an error; an unreadable or
/// unrecognised file is an error naming it.
pub fn describe_file(path: impl AsRef<Path>) -> Result<String> {
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

fn describe_container(path: &Path) -> Result<String> {
    let mut out = String::new();
    let info = match inspect(path) {
        Ok(info) => info,
        // Recognised by its magic, but the header itself is damaged or cut short.
        Err(CheckpointError::Format { source, .. }) => {
            writeln!(out, "{}: edgessl file (header unreadable)", path.display())?;
            writeln!(out, "verifies: no ({source})")?;
            return Ok(out);
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
    if !info.verifies() {
        writeln!(out, "verifies: no ({})", why_not(&info))?;
        return Ok(out);
    }
    if info.kind != Some(PayloadKind::EncoderExport) {
        // A checkpoint's payload type belongs to the trainer; the checksum is all we can check.
        writeln!(out, "verifies: yes (checksum ok)")?;
        return Ok(out);
    }
    match EncoderExport::load(path) {
        Err(e) => writeln!(out, "verifies: no ({e})")?,
        Ok(export) => {
            writeln!(out, "verifies: yes (checksum ok, tensors consistent)")?;
            writeln!(out, "\n[card]")?;
            out.push_str(&export.card.to_toml()?);
            writeln!(
                out,
                "\n[tensors] {} tensors, {} values",
                export.tensors.len(),
                export.param_count()
            )?;
            for t in &export.tensors {
                write_tensor_line(&mut out, &t.name, &t.shape, tensor_dtype(t))?;
            }
        }
    }
    Ok(out)
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

fn tensor_dtype(t: &NamedTensor) -> &'static str {
    match t.precision() {
        super::Precision::F32 => "F32",
        super::Precision::F16 => "F16",
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

fn describe_safetensors(path: &Path) -> Result<String> {
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
        "verifies: yes (header and tensor offsets consistent; no checksum in format)"
    )?;
    if let Some(meta) = header.metadata() {
        let mut keys: Vec<_> = meta.keys().collect();
        keys.sort();
        writeln!(out, "\n[metadata]")?;
        for k in keys {
            writeln!(out, "  {k} = {}", meta[k])?;
        }
    }
    let infos = header.tensors();
    let names = header.offset_keys();
    let total: usize = infos
        .values()
        .map(|i| i.shape.iter().product::<usize>())
        .sum();
    writeln!(out, "\n[tensors] {} tensors, {total} values", names.len())?;
    for name in &names {
        let info = infos[name];
        write_tensor_line(&mut out, name, &info.shape, &format!("{:?}", info.dtype))?;
    }
    Ok(out)
}
