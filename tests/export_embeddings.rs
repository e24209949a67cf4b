//! Embedding writers: `.npy` header per the NPY 1.0 spec and exact values; CSV round trip.

use edgessl::export::{npy_bytes, read_npy_f32, write_csv, write_npy};
use std::process::Command;

fn matrix(rows: usize, cols: usize) -> Vec<f32> {
    (0..rows * cols)
        .map(|i| ((i as f32) * 0.37).sin() * 10f32.powi((i % 7) as i32 - 3))
        .collect()
}

#[test]
fn npy_header_follows_the_spec() {
    for (rows, cols) in [(0, 4), (1, 1), (5, 3), (1000, 256), (123_456, 7)] {
        let data = matrix(rows, cols);
        let bytes = npy_bytes(rows, cols, &data);
        assert_eq!(&bytes[..6], b"\x93NUMPY");
        assert_eq!(bytes[6..8], [1, 0], "format version 1.0");
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        let data_start = 10 + header_len;
        assert_eq!(data_start % 64, 0, "data aligned to 64 bytes");
        let header = std::str::from_utf8(&bytes[10..data_start]).unwrap();
        assert!(header.is_ascii() && header.ends_with('\n'));
        assert_eq!(
            header.trim_end(),
            format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}")
        );
        assert_eq!(bytes.len(), data_start + 4 * rows * cols);
        let body: Vec<f32> = bytes[data_start..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(body, data);
    }
}

#[test]
fn npy_file_round_trips_and_shape_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("emb.npy");
    let data = matrix(17, 5);
    write_npy(&path, 17, 5, &data).unwrap();
    let (shape, back) = read_npy_f32(&path).unwrap();
    assert_eq!(shape, [17, 5]);
    assert_eq!(back, data);
    let err = write_npy(dir.path().join("bad.npy"), 3, 3, &data).unwrap_err();
    assert!(err.to_string().contains("bad.npy"), "{err}");
    assert!(!dir.path().join("bad.npy").exists());
}

#[test]
fn numpy_loads_the_npy_file() {
    let ok = Command::new("python3")
        .args(["-c", "import numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("note: skipping the numpy check: `python3 -c 'import numpy'` failed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("emb.npy");
    let data = matrix(9, 4);
    write_npy(&path, 9, 4, &data).unwrap();
    let script = "import sys, json, numpy as np\n\
                  a = np.load(sys.argv[1])\n\
                  print(json.dumps({'shape': list(a.shape), 'dtype': a.dtype.str, \
                  'c': bool(a.flags['C_CONTIGUOUS']), 'hex': a.tobytes().hex()}))";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["shape"], serde_json::json!([9, 4]));
    assert_eq!(v["dtype"], "<f4");
    assert_eq!(v["c"], true);
    // Compare bit patterns: JSON float text would add a second rounding step.
    let ours: String = data
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v["hex"], ours);

    // And a file numpy wrote is read by read_npy_f32.
    let np_path = dir.path().join("np.npy");
    let script = "import sys, numpy as np\nnp.save(sys.argv[1], np.arange(6, dtype='<f4').reshape(2, 3) / 4)";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&np_path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let (shape, values) = read_npy_f32(&np_path).unwrap();
    assert_eq!(shape, [2, 3]);
    assert_eq!(values, [0.0, 0.25, 0.5, 0.75, 1.0, 1.25]);
}

#[test]
fn csv_round_trips_exactly_with_quoted_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("emb.csv");
    let data = matrix(3, 4);
    let ids = vec![
        "img_001.png".to_string(),
        "a,b.png".into(),
        "say \"hi\".jpg".into(),
    ];
    write_csv(&path, 3, 4, &data, Some(&ids)).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "id,e0,e1,e2,e3");
    assert!(lines[2].starts_with("\"a,b.png\","));
    assert!(lines[3].starts_with("\"say \"\"hi\"\".jpg\","));
    for (i, line) in lines[1..].iter().enumerate() {
        let values: Vec<f32> = line
            .rsplitn(5, ',')
            .take(4)
            .map(|s| s.parse().unwrap())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        assert_eq!(values, &data[i * 4..(i + 1) * 4]);
    }
    write_csv(&path, 3, 4, &data, None).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("e0,e1,e2,e3\n"));
    assert!(write_csv(&path, 3, 4, &data, Some(&ids[..2])).is_err());
}
