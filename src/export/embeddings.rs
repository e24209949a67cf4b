//! Embedding matrices (one row per input) as NumPy `.npy` and CSV, for analysis outside
//! edgessl.

use super::error::ExportError;
use crate::checkpoint::atomic::{write_atomic, write_bytes_atomic};
use std::io::{BufWriter, Write};
use std::path::Path;

const NPY_MAGIC: &[u8] = b"\x93NUMPY";
/// NumPy aligns the data start to 64 bytes since 1.x; older readers accept any multiple of 16.
const NPY_ALIGN: usize = 64;

fn check_matrix(path: &Path, rows: usize, cols: usize, len: usize) -> Result<(), ExportError> {
    if rows.checked_mul(cols) != Some(len) {
        return Err(ExportError::Embeddings {
            path: path.to_owned(),
            message: format!(
                "{rows} x {cols} embedding matrix needs {rows}*{cols} values, got {len}"
            ),
        });
    }
    Ok(())
}

/// A `rows × cols` f32 matrix (row-major `data`) in NPY format version 1.0: magic, version,
/// little-endian u16 header length, a Python-literal dict
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (rows, cols), }` padded with spaces and
/// ending in `\n` so the data starts at a multiple of 64 bytes, then the values little-endian.
///
/// Panics if `data.len() != rows * cols` (a caller bug); [`write_npy`] checks first.
pub fn npy_bytes(rows: usize, cols: usize, data: &[f32]) -> Vec<u8> {
    assert_eq!(
        rows.checked_mul(cols),
        Some(data.len()),
        "matrix shape mismatch"
    );
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // magic(6) + version(2) + header length(2) + dict + padding + '\n'
    let unpadded = NPY_MAGIC.len() + 2 + 2 + dict.len() + 1;
    let header_len = dict.len() + 1 + (NPY_ALIGN - unpadded % NPY_ALIGN) % NPY_ALIGN;
    let mut out = Vec::with_capacity(10 + header_len + data.len() * 4);
    out.extend_from_slice(NPY_MAGIC);
    out.extend_from_slice(&[1, 0]);
    // A 2-D shape's dict is far below the v1.0 limit of 65535 bytes.
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(10 + header_len - 1, b' ');
    out.push(b'\n');
    for x in data {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Write a `rows × cols` f32 matrix (row-major) as `.npy`, atomically.
pub fn write_npy(
    path: impl AsRef<Path>,
    rows: usize,
    cols: usize,
    data: &[f32],
) -> Result<(), ExportError> {
    let path = path.as_ref();
    check_matrix(path, rows, cols, data.len())?;
    write_bytes_atomic(path, &npy_bytes(rows, cols, data)).map_err(|e| ExportError::io(path, e))
}

/// Read a C-order little-endian f32 `.npy` file (format 1.0, 2.0 or 3.0) as (shape, values).
/// Other dtypes and Fortran order are refused; this is a reader for edgessl's own output and
/// simple NumPy saves, not a general NPY parser.
pub fn read_npy_f32(path: impl AsRef<Path>) -> Result<(Vec<usize>, Vec<f32>), ExportError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| ExportError::io(path, e))?;
    parse_npy_f32(&bytes).map_err(|message| ExportError::Embeddings {
        path: path.to_owned(),
        message,
    })
}

/// [`read_npy_f32`] on bytes in memory; the error says what is wrong. Never panics.
pub fn parse_npy_f32(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>), String> {
    if bytes.len() < 10 || &bytes[..6] != NPY_MAGIC {
        return Err("not an .npy file".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported or truncated .npy version {v}")),
    };
    let dict = bytes
        .get(start..start.saturating_add(header_len))
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("truncated or non-text .npy header")?;
    let field = |key: &str| -> Option<&str> {
        let rest = &dict[dict.find(&format!("'{key}':"))? + key.len() + 3..];
        Some(rest.trim_start())
    };
    let descr = field("descr").ok_or("header has no 'descr'")?;
    if !descr.starts_with("'<f4'") {
        return Err(format!("dtype is not '<f4': {dict}"));
    }
    let fortran = field("fortran_order").ok_or("header has no 'fortran_order'")?;
    if !fortran.starts_with("False") {
        return Err("Fortran-order arrays are not supported".into());
    }
    let shape_text = field("shape")
        .and_then(|s| s.strip_prefix('('))
        .and_then(|s| s.split(')').next())
        .ok_or("header has no 'shape' tuple")?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad shape ({shape_text}): {e}"))?;
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("shape overflows")?;
    let body = &bytes[start + header_len..];
    if Some(body.len()) != count.checked_mul(4) {
        return Err(format!(
            "shape {shape:?} needs {count} values, file has {} bytes of data",
            body.len()
        ));
    }
    let values = body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((shape, values))
}

/// Write a `rows × cols` matrix as CSV, atomically: a header line `id,e0,e1,…` (or `e0,…`
/// without ids), then one row per input. Values use Rust's shortest round-trip formatting, so
/// parsing them back gives the exact f32. Ids are quoted when they contain `,`, `"` or line
/// breaks.
pub fn write_csv(
    path: impl AsRef<Path>,
    rows: usize,
    cols: usize,
    data: &[f32],
    ids: Option<&[String]>,
) -> Result<(), ExportError> {
    let path = path.as_ref();
    check_matrix(path, rows, cols, data.len())?;
    if let Some(ids) = ids
        && ids.len() != rows
    {
        return Err(ExportError::Embeddings {
            path: path.to_owned(),
            message: format!("{} ids for {rows} rows", ids.len()),
        });
    }
    write_atomic(path, |file| {
        let mut out = BufWriter::new(file);
        let mut header: Vec<String> = (0..cols).map(|j| format!("e{j}")).collect();
        if ids.is_some() {
            header.insert(0, "id".to_owned());
        }
        writeln!(out, "{}", header.join(","))?;
        for i in 0..rows {
            if let Some(ids) = ids {
                write!(out, "{},", csv_field(&ids[i]))?;
            }
            let row = &data[i * cols..(i + 1) * cols];
            for (j, x) in row.iter().enumerate() {
                if j > 0 {
                    out.write_all(b",")?;
                }
                write!(out, "{x}")?;
            }
            out.write_all(b"\n")?;
        }
        out.flush()
    })
    .map_err(|e| ExportError::io(path, e))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}
