//! Getting public data onto the device without a web download: Fashion-MNIST ships in Debian
//! as `dataset-fashion-mnist`, and OpenCV's `vtest.avi` walking-people clip in `opencv-doc`.
//! `apt-get download` + `dpkg -x` unpack them into the cache folder (no root, no install);
//! ffmpeg, where present, turns the clip into a raw frame file for `--stream`.

use super::DataError;
use super::idx::read_idx;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Fashion-MNIST file names: train images, train labels, test images, test labels.
pub const FASHION_MNIST_FILES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];
const FASHION_MNIST_PACKAGE: &str = "dataset-fashion-mnist";
const FASHION_MNIST_MEMBER_DIR: &str = "usr/share/datasets/fashion-mnist";

const VTEST_PACKAGE: &str = "opencv-doc";
const VTEST_MEMBER: &str = "usr/share/doc/opencv-doc/examples/data/vtest.avi";
/// Size the fetched clip is decoded at: a quarter of its 768x576, plenty for 96 px views.
pub const VTEST_DECODED_SIZE: (usize, usize) = (192, 144);

/// The cache folder: `$EDGESSL_CACHE`, else `./.cache/edgessl`.
pub fn default_cache_dir() -> PathBuf {
    match std::env::var_os("EDGESSL_CACHE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(".cache").join("edgessl"),
    }
}

/// Where Fashion-MNIST lives inside `cache`.
pub fn fashion_mnist_dir(cache: &Path) -> PathBuf {
    cache.join("fashion-mnist")
}

/// The folder holding the four Fashion-MNIST files, fetching them first if any is missing.
pub fn ensure_fashion_mnist(cache: &Path) -> Result<PathBuf, DataError> {
    let dir = fashion_mnist_dir(cache);
    if FASHION_MNIST_FILES.iter().all(|f| dir.join(f).is_file()) {
        return Ok(dir);
    }
    tracing::info!(
        "Fashion-MNIST not in {}: fetching Debian package {FASHION_MNIST_PACKAGE}",
        dir.display()
    );
    let members: Vec<(String, &str)> = FASHION_MNIST_FILES
        .iter()
        .map(|f| (format!("{FASHION_MNIST_MEMBER_DIR}/{f}"), *f))
        .collect();
    apt_extract(FASHION_MNIST_PACKAGE, &members, &dir).map_err(|why| {
        DataError::Invalid(format!(
            "cannot fetch Fashion-MNIST into {}: {why}\nInstead, put {} there yourself, \
             or point edgessl at files with --data idx:IMAGES,LABELS (or cifar10:DIR, stl10:DIR, --frames DIR)",
            dir.display(),
            FASHION_MNIST_FILES.join(", ")
        ))
    })?;
    // A bad download would otherwise surface later as a confusing training error.
    for f in FASHION_MNIST_FILES {
        read_idx(&dir.join(f))?;
    }
    Ok(dir)
}

/// OpenCV's `vtest.avi` (768x576 walking people) in `cache/vtest/`, fetched if missing.
pub fn ensure_vtest(cache: &Path) -> Result<PathBuf, DataError> {
    let dir = cache.join("vtest");
    let avi = dir.join("vtest.avi");
    if avi.is_file() {
        return Ok(avi);
    }
    tracing::info!("fetching vtest.avi from Debian package {VTEST_PACKAGE}");
    apt_extract(VTEST_PACKAGE, &[(VTEST_MEMBER.to_string(), "vtest.avi")], &dir).map_err(|why| {
        DataError::Invalid(format!(
            "cannot fetch vtest.avi into {}: {why}\nAny video works instead: \
             ffmpeg -i VIDEO -f rawvideo -pix_fmt gray - | edgessl pretrain --stream - --stream-size WxH",
            dir.display()
        ))
    })?;
    Ok(avi)
}

/// Decodes `video` with ffmpeg into a raw gray8 file of `width x height` frames beside it
/// (`<stem>-WxH.gray8`), reusing an existing one. Needs `ffmpeg` on the PATH.
pub fn decode_to_gray8(video: &Path, width: usize, height: usize) -> Result<PathBuf, DataError> {
    let stem = video
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "video".into());
    let out = video.with_file_name(format!("{stem}-{width}x{height}.gray8"));
    if out.is_file() {
        return Ok(out);
    }
    let tmp = out.with_extension("gray8.part");
    let result = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-i"])
        .arg(video)
        .args([
            "-vf",
            &format!("scale={width}:{height}"),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
        ])
        .arg(&tmp)
        .output();
    let output = match result {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DataError::Invalid(format!(
                "ffmpeg not found, so {} was not decoded; install it (Debian: apt-get install ffmpeg) \
                 and rerun, or stream it yourself: ffmpeg -i {} -vf scale={width}:{height} -f rawvideo \
                 -pix_fmt gray - | edgessl pretrain --stream - --stream-size {width}x{height}",
                video.display(),
                video.display()
            )));
        }
        Err(e) => return Err(DataError::io("ffmpeg", e)),
    };
    if !output.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(DataError::format(
            video,
            format!(
                "ffmpeg failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        ));
    }
    std::fs::rename(&tmp, &out).map_err(|e| DataError::io(&out, e))?;
    Ok(out)
}

/// Downloads Debian `package` (no install, no root) and copies `members` (path inside the
/// package → file name) into `dest`. Errors are plain sentences for the caller to wrap.
fn apt_extract(package: &str, members: &[(String, &str)], dest: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dest).map_err(|e| format!("cannot create {}: {e}", dest.display()))?;
    let work = dest.join(format!(".apt-{package}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let result = download_and_unpack(package, members, dest, &work);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn download_and_unpack(
    package: &str,
    members: &[(String, &str)],
    dest: &Path,
    work: &Path,
) -> Result<(), String> {
    let download = || {
        run(
            Command::new("apt-get")
                .args(["download", package])
                .current_dir(work),
            "apt-get",
        )
    };
    if let Err(first) = download() {
        if first.contains("not found on this system") {
            return Err(first);
        }
        // Usually missing or stale package lists; refreshing them needs root.
        tracing::info!("apt-get download {package} failed; running apt-get update and retrying");
        if let Err(update) = run(Command::new("apt-get").arg("update"), "apt-get") {
            return Err(format!(
                "apt-get download {package} failed ({first}); apt-get update failed too ({update}); \
                 run `apt-get update` as root and retry"
            ));
        }
        download().map_err(|e| format!("apt-get download {package} failed: {e}"))?;
    }
    let deb = std::fs::read_dir(work)
        .map_err(|e| format!("cannot list {}: {e}", work.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| format!("apt-get download {package} produced no .deb file"))?;
    let root = work.join("root");
    run(Command::new("dpkg").arg("-x").arg(&deb).arg(&root), "dpkg")?;
    for (member, name) in members {
        let from = root.join(member);
        let part = dest.join(format!("{name}.part"));
        std::fs::copy(&from, &part).map_err(|e| format!("{member} missing from {package}: {e}"))?;
        std::fs::rename(&part, dest.join(name))
            .map_err(|e| format!("cannot move {name} into place: {e}"))?;
    }
    Ok(())
}

/// Runs a command, turning failure into a sentence with the tail of its stderr.
fn run(cmd: &mut Command, program: &str) -> Result<(), String> {
    match cmd.output() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "{program} not found on this system (it needs Debian's apt tools)"
        )),
        Err(e) => Err(format!("cannot run {program}: {e}")),
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let tail: Vec<&str> = err
                .lines()
                .filter(|l| !l.starts_with("W: "))
                .rev()
                .take(3)
                .collect();
            Err(format!(
                "{program} exited with {}: {}",
                o.status,
                tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
            ))
        }
    }
}
